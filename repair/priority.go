package repair

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Priority is how the repair process steps aside for live traffic on a machine it shares with
// the pipeline (or with Kafka and ClickHouse).
type Priority struct {
	// Idle puts every thread in the SCHED_IDLE class: the repair gets a core only when nothing
	// else wants it. Niceness still competes: at nice 10 a process keeps about a tenth of the
	// share of one at 0 (1/87 of the weight at 19), which on a loaded 2-core machine raised live
	// ingest latency; SCHED_IDLE's weight is 3 against nice 0's 1024. A machine saturated by
	// live traffic stops the repair altogether, which is the point.
	Idle bool
	// Nice is the niceness when Idle is off (0: unchanged).
	Nice int
	// IdleIO puts every thread in the idle I/O class (ioprio): its disk reads and writes (the
	// replay's state store, the private ledger) wait for the disk to be otherwise idle. Only
	// schedulers with classes (BFQ) honour it; others ignore it.
	IdleIO bool
}

// Lower applies p to every thread of this process.
//
// Linux keeps the scheduling class, niceness and I/O priority per thread, and the calls set only
// the thread named: a Go process has several threads by the time it runs this. So every task
// under /proc/self/task is set, twice, the second pass catching threads started meanwhile;
// threads started later inherit them from their creator.
func Lower(p Priority) error {
	if !p.Idle && p.Nice == 0 && !p.IdleIO {
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
			if err := lowerThread(tid, p); err != nil && !errors.Is(err, syscall.ESRCH) { // ESRCH: the thread ended
				return fmt.Errorf("lower priority: %w", err)
			}
		}
	}
	return nil
}

// ioprioIdle is IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0) (linux/ioprio.h): class 3 in the top
// bits above IOPRIO_CLASS_SHIFT 13.
const (
	ioprioWhoProcess = 1
	ioprioIdle       = 3 << 13
)

func lowerThread(tid int, p Priority) error {
	switch {
	case p.Idle:
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
			return fmt.Errorf("SCHED_IDLE: %w", err)
		}
	case p.Nice != 0:
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, p.Nice); err != nil {
			return fmt.Errorf("nice %d: %w", p.Nice, err)
		}
	}
	if p.IdleIO {
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioIdle); errno != 0 {
			return fmt.Errorf("idle I/O class: %w", errno)
		}
	}
	return nil
}
