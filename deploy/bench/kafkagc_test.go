package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKafkaPausesSumsSafepointsInTheWindow(t *testing.T) {
	log := `[2026-11-29T06:22:50.000+0000][1686.0s][info ][safepoint] Safepoint "G1CollectForAllocation", Time since last: 1 ns, Reaching safepoint: 1 ns, Cleanup: 1 ns, At safepoint: 1 ns, Total: 90000000 ns
[2026-11-29T06:22:52.327+0000][1688.364s][info ][gc       ] GC(791) Pause Young (Normal) (G1 Evacuation Pause) 412M->362M(889M) 41.235ms
[2026-11-29T06:22:52.329+0000][1688.365s][info ][safepoint] Safepoint "G1CollectForAllocation", Time since last: 1695454606 ns, Reaching safepoint: 22346 ns, Cleanup: 12275 ns, At safepoint: 42519824 ns, Total: 42554445 ns
[2026-11-29T06:31:09.474+0000][212.708s][info][safepoint] Safepoint "ZMarkStart", Time since last: 3066883833 ns, Reaching safepoint: 23358 ns, Cleanup: 22488 ns, At safepoint: 86331 ns, Total: 132177 ns
[2026-11-29T06:40:00.000+0000][900.0s][info][safepoint] Safepoint "Cleanup", Time since last: 1 ns, Reaching safepoint: 1 ns, Cleanup: 1 ns, At safepoint: 1 ns, Total: 70000000 ns
`
	path := filepath.Join(t.TempDir(), "gc.log")
	require.NoError(t, os.WriteFile(path, []byte(log), 0o600))
	from := time.Date(2026, 11, 29, 6, 22, 51, 0, time.UTC)
	to := time.Date(2026, 11, 29, 6, 32, 0, 0, time.UTC)
	p := kafkaPauses(path, from, to)
	require.Equal(t, 2, p["pauses"])
	require.Equal(t, 42.7, p["paused_ms"])
	require.Equal(t, 42.6, p["longest_ms"])
	require.Equal(t, map[string]int{"G1CollectForAllocation": 1, "ZMarkStart": 1}, p["by_cause"])
	require.Nil(t, kafkaPauses(filepath.Join(t.TempDir(), "none.log"), from, to))
}
