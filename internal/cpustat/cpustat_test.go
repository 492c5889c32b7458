package cpustat

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A span's figures from two readings: the busy share of all CPUs and the CPU seconds of the
// whole machine and of this process.
func TestSubAndBusyShare(t *testing.T) {
	before := Reading{Busy: 100, Total: 400, Self: 10}
	after := Reading{Busy: 190, Total: 500, Self: 25}
	d := after.Sub(before)
	require.InDelta(t, 0.9, d.BusyShare(), 1e-9)
	require.InDelta(t, 90, d.Busy, 1e-9)
	require.InDelta(t, 15, d.Self, 1e-9)
	require.Zero(t, before.Sub(after).BusyShare(), "no time passed (or counters reset): nothing to say")
}

// This machine's counters can be read, and only grow.
func TestReadNow(t *testing.T) {
	a, err := ReadNow()
	require.NoError(t, err)
	b, err := ReadNow()
	require.NoError(t, err)
	require.Positive(t, a.Total)
	require.GreaterOrEqual(t, b.Total, a.Total)
	require.GreaterOrEqual(t, b.Busy, a.Busy)
}
