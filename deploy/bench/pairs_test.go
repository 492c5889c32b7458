package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeRun writes a bench report with the figures a pair compares.
func writeRun(t *testing.T, dir, name string, eps, cpuMs float64) string {
	path := filepath.Join(dir, name)
	body := fmt.Sprintf(`{"e2e_throughput":{"events_per_s":%g},"cpu_s_per_1000_events":{"total_with_services":%g}}`, eps, cpuMs)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

// Pairs whose changes all sit near -4 % show the target met; near -20 %, missed; a few pairs
// are not judged at all.
func TestPoolPairsJudgesTheTargetOnTheInterval(t *testing.T) {
	dir := t.TempDir()
	pairsOf := func(changes ...float64) []string {
		var out []string
		for i, c := range changes {
			off := writeRun(t, dir, fmt.Sprintf("off%d-%g.json", i, c), 10000, 0.16)
			on := writeRun(t, dir, fmt.Sprintf("on%d-%g.json", i, c), 10000*(1+c/100), 0.18)
			out = append(out, off+","+on)
		}
		return out
	}
	for _, tc := range []struct {
		changes []float64
		verdict string
	}{
		{[]float64{-3, -5, -4, -2, -6, -4}, "target: met"},
		{[]float64{-18, -22, -20, -19, -21, -20}, "target: missed"},
		{[]float64{-3, -25, -4, -20, -6, -15}, "target: not shown"},
		{[]float64{-3, -4}, "target: not judged"},
	} {
		var out bytes.Buffer
		require.NoError(t, poolPairs(&out, pairsOf(tc.changes...)))
		require.Contains(t, out.String(), tc.verdict, out.String())
		require.NotContains(t, out.String(), "Inf", "an interval it cannot give is not printed")
	}
}

func TestPoolPairsRefusesAnUnfinishedReport(t *testing.T) {
	dir := t.TempDir()
	off := writeRun(t, dir, "off.json", 10000, 0.16)
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"ingest_batched":{}}`), 0o644))
	err := poolPairs(&bytes.Buffer{}, []string{off + "," + bad})
	require.ErrorContains(t, err, "no e2e_throughput")
	require.ErrorContains(t, poolPairs(&bytes.Buffer{}, []string{off}), "want OFF.json,ON.json")
}
