package main

import (
	"github.com/prometheus/procfs"
)

// machineCPU reads where a phase's CPU went on the whole machine: every CPU's busy and idle time
// (/proc/stat) and this process's own (the one-request-per-event phase's webhook receiver runs
// here), so a figure short of its target can be told apart from a machine that had nothing left.
type machineCPU struct {
	busy, total, self float64 // seconds, at the reading
}

// readMachineCPU reads the counters now; ok is false where /proc cannot be read.
func readMachineCPU() (m machineCPU, ok bool) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return m, false
	}
	st, err := fs.Stat()
	if err != nil {
		return m, false
	}
	me, err := fs.Self()
	if err != nil {
		return m, false
	}
	ps, err := me.Stat()
	if err != nil {
		return m, false
	}
	c := st.CPUTotal
	// Steal is time the hypervisor gave another guest: not this machine's to use.
	m.busy = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ
	m.total = m.busy + c.Idle + c.Iowait
	m.self = ps.CPUTime()
	return m, true
}

// since reports, from an earlier reading to m, the share of the machine's CPUs that was busy and
// the CPU seconds of the whole machine and of this process.
func (m machineCPU) since(prev machineCPU) (busyShare, busySeconds, selfSeconds float64) {
	if m.total <= prev.total {
		return 0, 0, 0
	}
	busySeconds = m.busy - prev.busy
	return busySeconds / (m.total - prev.total), busySeconds, m.self - prev.self
}
