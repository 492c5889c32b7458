package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRepairProgressLine(t *testing.T) {
	require.Equal(t, "repair r1: 250/1000 events (25.0%), 25 events/s, about 30s left",
		repairProgressLine("repair r1", 250, 1000, 10*time.Second))
	require.Equal(t, "repair r1: 0/1000 events (0.0%), 0 events/s, estimate pending",
		repairProgressLine("repair r1", 0, 1000, time.Second))
	require.Equal(t, "repair r1: 10/10 events (100.0%), 5 events/s, done",
		repairProgressLine("repair r1", 10, 10, 2*time.Second))
}

// A repair paused for live traffic says so, and why, instead of a rate and an estimate.
func TestRepairWaitingLine(t *testing.T) {
	require.Equal(t, "repair r1: 250/1000 events (25.0%), paused 2m10s for live traffic: the machine's other processes keep 94% of its CPUs busy (yield-cpu 0.9)",
		repairWaitingLine("repair r1", 250, 1000, "the machine's other processes keep 94% of its CPUs busy (yield-cpu 0.9)", 130*time.Second+300*time.Millisecond))
}
