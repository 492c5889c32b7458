package repair

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// cpuMeter reads how much of the machine's CPU the other processes used between two readings:
// the busy time of all CPUs (/proc/stat) less this process's own.
//
// Why the repair needs it besides SCHED_IDLE: that class is the lowest Linux has, not "only
// when idle". Its weight is 3 against a nice-10 process's 110, so on cores saturated by live
// traffic the repair still took 3-7 % of a core, mostly from the pipeline's workers
// (docs/performance.md, "A repair beside live traffic").
type cpuMeter struct {
	fs         procfs.FS
	busy, self float64 // seconds at the last reading
	total      float64 // all CPUs' seconds, idle included, at the last reading
	read       bool
}

func newCPUMeter() (*cpuMeter, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("cpu meter: %w", err)
	}
	m := &cpuMeter{fs: fs}
	_, _, err = m.othersShare()
	return m, err
}

// othersShare is the share of all CPUs (0 to 1) the other processes kept busy since the last
// reading; ok is false on the first reading and when no time has passed.
func (m *cpuMeter) othersShare() (share float64, ok bool, err error) {
	st, err := m.fs.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("cpu meter: %w", err)
	}
	me, err := m.fs.Self()
	if err != nil {
		return 0, false, fmt.Errorf("cpu meter: %w", err)
	}
	ps, err := me.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("cpu meter: %w", err)
	}
	c := st.CPUTotal
	// Steal is time the hypervisor gave another guest: not this machine's to use.
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ
	total := busy + c.Idle + c.Iowait
	self := ps.CPUTime()
	prevBusy, prevSelf, prevTotal, wasRead := m.busy, m.self, m.total, m.read
	m.busy, m.self, m.total, m.read = busy, self, total, true
	if !wasRead || total <= prevTotal {
		return 0, false, nil
	}
	others := (busy - prevBusy) - (self - prevSelf)
	return min(1, max(0, others/(total-prevTotal))), true, nil
}
