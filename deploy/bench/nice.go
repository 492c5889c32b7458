package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// renice sets the CPU niceness of every thread of the process (0: leave it): a background stage
// at 10 gets about a tenth of the CPU share of one at 0 when both want the cores.
//
// Linux keeps a niceness per thread, and setpriority(PRIO_PROCESS, pid) sets only the thread
// whose id is pid: a Go program has several threads before the bench can renice it (a sink kept
// 4 of its 10 threads, and 12 % of a core, at 0), and a running ClickHouse dozens. So every task
// under /proc/<pid>/task is set, twice, the second pass catching threads started meanwhile (a new
// thread inherits its creator's niceness, so later ones follow).
func (p *proc) renice(nice int) error {
	if nice == 0 {
		return nil
	}
	if _, err := p.setThreadsNice(func(int) int { return nice }); err != nil {
		return fmt.Errorf("renice %s to %d: %w", p.name, nice, err)
	}
	return nil
}

// reniceFor sets every thread of a process the bench did not start (ClickHouse) to nice and
// returns a function that puts back each thread's earlier niceness, the process's for threads
// started since.
func (p *proc) reniceFor(nice int) (restore func(), err error) {
	before, err := p.setThreadsNice(func(int) int { return nice })
	if err != nil {
		return func() {}, fmt.Errorf("renice %s to %d: %w", p.name, nice, err)
	}
	main := before[p.pid]
	return func() {
		_, _ = p.setThreadsNice(func(tid int) int {
			if n, ok := before[tid]; ok {
				return n
			}
			return main
		})
	}, nil
}

// setThreadsNice sets each thread's niceness to to(tid), twice over, and returns the niceness
// each thread had when first seen.
func (p *proc) setThreadsNice(to func(tid int) int) (map[int]int, error) {
	before := map[int]int{}
	for range 2 {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
		if err != nil {
			return before, err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if _, seen := before[tid]; !seen {
				// The raw syscall answers 20 - nice (never negative); syscall.Getpriority returns it as is.
				prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
				if err != nil {
					continue // the thread ended
				}
				before[tid] = 20 - prio
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, to(tid)); err != nil && err != syscall.ESRCH {
				return before, err
			}
		}
	}
	return before, nil
}
