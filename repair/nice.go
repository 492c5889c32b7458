package repair

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// LowerPriority sets the CPU niceness of every thread of this process to nice (0: leave it), so
// that on a machine it shares with the pipeline the repair gets the cores only when live
// traffic leaves them idle (at 10, about a tenth of the share of a process at 0).
//
// Linux keeps a niceness per thread and setpriority(PRIO_PROCESS, 0) sets only the calling one;
// a Go process has several threads by the time it runs this. So every task under
// /proc/self/task is set, twice, the second pass catching threads started meanwhile; threads
// started later inherit their creator's niceness. (deploy/bench does the same from outside.)
func LowerPriority(nice int) error {
	if nice == 0 {
		return nil
	}
	for range 2 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("lower priority: %w", err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && err != syscall.ESRCH {
				return fmt.Errorf("lower priority to %d: %w", nice, err)
			}
		}
	}
	return nil
}
