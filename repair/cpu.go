package repair

import (
	"fmt"

	"github.com/prometheus/procfs"

	"github.com/tollgate-dev/tollgate/internal/cpustat"
)

// cpuMeter reads how much of the machine's CPU the other processes used between two readings:
// the busy time of all CPUs (/proc/stat) less this process's own.
//
// Why the repair needs it besides SCHED_IDLE: that class is the lowest Linux has, not "only
// when idle". Its weight is 3 against a nice-10 process's 110, so on cores saturated by live
// traffic the repair still took 3-7 % of a core, mostly from the pipeline's workers
// (docs/performance.md, "A repair beside live traffic").
type cpuMeter struct {
	fs   procfs.FS
	last cpustat.Reading
	read bool
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
	now, err := cpustat.Read(m.fs)
	if err != nil {
		return 0, false, fmt.Errorf("cpu meter: %w", err)
	}
	d, wasRead := now.Sub(m.last), m.read
	m.last, m.read = now, true
	if !wasRead || d.Total <= 0 {
		return 0, false, nil
	}
	return min(1, max(0, (d.Busy-d.Self)/d.Total)), true, nil
}
