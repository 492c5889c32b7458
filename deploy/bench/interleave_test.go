package main

import (
	"fmt"
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

	iv := startInterleave(p, nil, 50*time.Millisecond)
	require.Eventually(t, func() bool { return procState(t, p.pid) == "T" }, 10*time.Second, 5*time.Millisecond, "stopped in an odd window")
	require.Eventually(t, func() bool { return procState(t, p.pid) != "T" }, 10*time.Second, 5*time.Millisecond, "resumed in the next")
	iv.add("ingest", iv.from.Add(10*time.Millisecond), 3*time.Millisecond) // window 0: running
	iv.add("ingest", iv.from.Add(60*time.Millisecond), 7*time.Millisecond) // window 1: stopped
	out := iv.finish()
	require.NotEqual(t, "T", procState(t, p.pid), "left running")

	ingest := out["ingest"].(map[string]any)
	run, stopped := ingest["repair_running"].(map[string]any), ingest["repair_stopped"].(map[string]any)
	require.Equal(t, 1, run["samples"])
	require.Equal(t, 3.0, run["p99_ms"])
	require.Equal(t, 1, stopped["samples"])
	require.Equal(t, []float64{7}, stopped["window_p99_ms"])
}

func TestPermutationP(t *testing.T) {
	same := permutationP([]float64{10, 12, 11, 13}, []float64{11, 12, 10, 13})
	require.Greater(t, same, 0.5, "alike samples")
	apart := permutationP([]float64{100, 101, 102, 103, 104, 105}, []float64{10, 11, 12, 13, 14, 15})
	require.Less(t, apart, 0.01, "separate samples")
}

// Runs of different levels are pooled by comparing windows within their own run: a shift of 10
// in each run is found as 10, and is unlikely by chance; the runs' levels do not count.
func TestPooledPermutation(t *testing.T) {
	low := [2][]float64{{20, 21, 22, 23, 24}, {10, 11, 12, 13, 14}}
	high := [2][]float64{{210, 211, 212, 213, 214}, {200, 201, 202, 203, 204}}
	d, p := pooledPermutation([][2][]float64{low, high})
	require.InDelta(t, 10, d, 1e-9)
	require.Less(t, p, 0.01)
}
