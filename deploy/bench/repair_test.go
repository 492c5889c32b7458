package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// The bench's fixed policy is a valid policy that forwards what the demo policy blocks for
// want of a choice: every jurisdiction opt_out, under its own version.
func TestFixPolicy(t *testing.T) {
	b, err := os.ReadFile("../demo/policy.yaml")
	require.NoError(t, err)
	require.Contains(t, string(b), "{model: opt_in}")
	p, err := policy.Parse("fixed.yaml", []byte(fixPolicy(string(b))))
	require.NoError(t, err)
	require.Equal(t, "bench-fixed", p.Version)
	for name, j := range p.Jurisdictions {
		require.Equal(t, policy.OptOut, j.Model, name)
	}
	require.NotContains(t, fixPolicy(string(b)), "opt_in")
	require.Equal(t, 1, strings.Count(fixPolicy(string(b)), "version:"))
}

// The bench reads the repair's progress from its log: the last progress line, among zap's JSON
// lines, counts.
func TestRepairProgressFromLog(t *testing.T) {
	dir := t.TempDir()
	r := &benchRepair{runID: "r1", log: dir + "/repair.log"}
	n, _ := r.progress()
	require.Zero(t, n, "no log yet")
	require.NoError(t, os.WriteFile(r.log, []byte(`{"level":"info","msg":"repair: pausing for live traffic","cpu_others":0.95}
repair r1: 0/500 events (0.0%), 0 events/s, estimate pending
repair r1: 120/500 events (24.0%), 24 events/s, about 16s left
{"level":"info","msg":"repair: live traffic leaves room again, resuming"}
repair r1: 130/500 events (26.0%), paused 5s for live traffic: the machine's other processes keep 95% of its CPUs busy (yield-cpu 0.9)
`), 0o600))
	n, line := r.progress()
	require.Equal(t, int64(130), n)
	require.Equal(t, "130/500 events (26.0%), paused 5s for live traffic: the machine's other processes keep 95% of its CPUs busy (yield-cpu 0.9)", line,
		"a paused repair's line counts too")
}
