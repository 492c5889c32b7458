// Package cpustat reads the machine's CPU time and this process's own from /proc
// (prometheus/procfs): `tollgate repair`'s gate (the share the other processes keep busy) and
// the bench's one-request-per-event phase (where a phase's CPU went) read it here.
package cpustat

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// Reading is CPU time in seconds, since boot or, from Sub, between two readings.
type Reading struct {
	Busy  float64 // all CPUs, busy
	Total float64 // all CPUs, idle included
	Self  float64 // this process
}

// Read reads the counters now from fs (procfs.NewDefaultFS, or a /proc written for a test).
func Read(fs procfs.FS) (Reading, error) {
	st, err := fs.Stat()
	if err != nil {
		return Reading{}, fmt.Errorf("cpu time: %w", err)
	}
	me, err := fs.Self()
	if err == nil {
		var ps procfs.ProcStat
		if ps, err = me.Stat(); err == nil {
			c := st.CPUTotal
			// Steal is time the hypervisor gave another guest: not this machine's to use.
			busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ
			return Reading{Busy: busy, Total: busy + c.Idle + c.Iowait, Self: ps.CPUTime()}, nil
		}
	}
	return Reading{}, fmt.Errorf("cpu time of this process: %w", err)
}

// Sub is the time from prev to r.
func (r Reading) Sub(prev Reading) Reading {
	return Reading{Busy: r.Busy - prev.Busy, Total: r.Total - prev.Total, Self: r.Self - prev.Self}
}

// ReadNow is Read from the system's /proc.
func ReadNow() (Reading, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return Reading{}, fmt.Errorf("cpu time: %w", err)
	}
	return Read(fs)
}

// BusyShare is the share of all CPUs (0 to 1) that was busy over a Sub's span; 0 when no time
// passed.
func (r Reading) BusyShare() float64 {
	if r.Total <= 0 {
		return 0
	}
	return r.Busy / r.Total
}
