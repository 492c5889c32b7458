package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// procState is the state letter of /proc/<pid>/stat (T: stopped by a signal).
func procState(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))[0]
}

func TestInterleaveStopsAndResumesInTurns(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{name: "sleeper", pid: cmd.Process.Pid}

	iv := startInterleave(p, nil, 50*time.Millisecond, 7)
	require.Eventually(t, func() bool { return procState(t, p.pid) == "T" }, 10*time.Second, 5*time.Millisecond, "stopped in a window")
	require.Eventually(t, func() bool { return procState(t, p.pid) != "T" }, 10*time.Second, 5*time.Millisecond, "resumed in another")
	iv.add("ingest", iv.from.Add(10*time.Millisecond), 3*time.Millisecond) // window 0
	iv.add("ingest", iv.from.Add(60*time.Millisecond), 7*time.Millisecond) // window 1, the other state
	out := iv.finish()
	require.NotEqual(t, "T", procState(t, p.pid), "left running")

	ingest := out["ingest"].(map[string]any)
	run, stopped := ingest["repair_running"].(map[string]any), ingest["repair_stopped"].(map[string]any)
	want := map[int]float64{0: 3, 1: 7}
	require.Equal(t, 1, run["samples"])
	require.Equal(t, want[iv.running(1)], run["p99_ms"], "window 0 holds 3 ms, window 1 7 ms")
	require.Equal(t, 1, stopped["samples"])
	require.Equal(t, []float64{want[1-iv.running(1)]}, stopped["window_p99_ms"])
	require.Equal(t, 1, ingest["pairs"])
}

// Every pair has the repair running in exactly one of its windows, which one a coin toss per
// pair: both orders come up, about equally often, and the same seed gives the same order.
func TestInterleavePairsAreCoinTosses(t *testing.T) {
	iv := &interleave{seed: 42}
	first := 0
	for j := range 1000 {
		require.Equal(t, 1, iv.running(2*j)+iv.running(2*j+1), "pair %d", j)
		first += iv.running(2 * j)
		require.Equal(t, runningFirst(42, j), runningFirst(42, j))
	}
	require.InDelta(t, 500, first, 60)
}

func TestSignFlipP(t *testing.T) {
	_, same := signFlipP([][2][]float64{{{10, 12, 11, 13}, {11, 11, 12, 12}}})
	require.Greater(t, same, 0.5, "pairs alike")
	d, apart := signFlipP([][2][]float64{{{20, 31, 22, 43, 24, 15, 26, 37}, {10, 21, 12, 33, 14, 5, 16, 27}}})
	require.InDelta(t, 10, d, 1e-9)
	require.Less(t, apart, 0.02, "every pair 10 apart: 2 of 256 sign patterns are as far")
}

// Runs of different levels pool by their pairs: a shift of 10 in each run is found as 10, and
// is unlikely by chance; the runs' levels do not count.
func TestSignFlipPoolsRuns(t *testing.T) {
	low := [2][]float64{{20, 21, 22, 23, 24}, {10, 11, 12, 13, 14}}
	high := [2][]float64{{210, 211, 212, 213, 214}, {200, 201, 202, 203, 204}}
	d, p := signFlipP([][2][]float64{low, high})
	require.InDelta(t, 10, d, 1e-9)
	require.Less(t, p, 0.01)
}

// The interval holds the shifts the pairs are consistent with: a shift of 10 with noise of ±1
// gives an interval around 10 that leaves 0 out; too few pairs give no interval.
func TestSignFlipCI(t *testing.T) {
	lo, hi := signFlipCI([]float64{9, 11, 10.5, 9.5, 10, 11, 9, 10})
	require.Less(t, lo, 10.0)
	require.Greater(t, hi, 10.0)
	require.Greater(t, lo, 8.0)
	require.Less(t, hi, 12.0)
	lo, hi = signFlipCI([]float64{1, 2, 3})
	require.True(t, math.IsInf(lo, -1) && math.IsInf(hi, 1))
}

// signFlipP is the sign-flip test as the report gives it: the mean of the runs' pair
// differences and its two-sided p-value.
func signFlipP(runs [][2][]float64) (diff, p float64) {
	d := pairDiffs(runs)
	return mean(d), signFlip(d, 0)
}
