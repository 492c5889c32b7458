package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The phase's machine figures: the busy share of all CPUs and the CPU seconds, from two readings.
func TestMachineCPUSince(t *testing.T) {
	before := machineCPU{busy: 100, total: 400, self: 10}
	after := machineCPU{busy: 190, total: 500, self: 25}
	share, busy, self := after.since(before)
	require.InDelta(t, 0.9, share, 1e-9)
	require.InDelta(t, 90, busy, 1e-9)
	require.InDelta(t, 15, self, 1e-9)
	share, busy, self = before.since(after) // no time passed (or counters reset): nothing to say
	require.Zero(t, share+busy+self)
}

// This machine's counters can be read, and only grow.
func TestReadMachineCPU(t *testing.T) {
	a, ok := readMachineCPU()
	require.True(t, ok)
	b, ok := readMachineCPU()
	require.True(t, ok)
	require.Positive(t, a.total)
	require.GreaterOrEqual(t, b.total, a.total)
	require.GreaterOrEqual(t, b.busy, a.busy)
}
