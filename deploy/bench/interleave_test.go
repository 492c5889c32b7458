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
	iv.add(iv.from.Add(10*time.Millisecond), 3*time.Millisecond) // window 0: running
	iv.add(iv.from.Add(60*time.Millisecond), 7*time.Millisecond) // window 1: stopped
	out := iv.finish()
	require.NotEqual(t, "T", procState(t, p.pid), "left running")

	run, stopped := out["repair_running"].(map[string]any), out["repair_stopped"].(map[string]any)
	require.Equal(t, 1, run["requests"])
	require.Equal(t, 3.0, run["p99_ms"])
	require.Equal(t, 1, stopped["requests"])
	require.Equal(t, []float64{7}, stopped["window_p99_ms"])
}
