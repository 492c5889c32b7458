package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/sample"
)

// run runs the binary (args as given, config included) with the pipeline's environment and
// returns stdout, stderr and the exit code.
func (p *pipeline) run(args ...string) (string, string, int) {
	p.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = p.env()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(p.t, err)
	return out.String(), errOut.String(), 0
}

// Events are decided under policy v1; the policy then drops a field from meta's list; a replay
// re-decides them and `tollgate audit diff` shows exactly the decisions that change — meta's
// forwarded ones, each losing that field — and nothing else.
func TestReplayAndAuditDiffShowExactlyThePolicyChange(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	events := sample.Events(uint64(time.Now().UnixNano()), numEvents, numUsers, time.Now().Add(-time.Minute))
	n, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	require.Equal(t, numEvents, n)
	want := map[string][2]string{}
	var metaForwarded []string
	for _, e := range events {
		for _, dest := range []string{"ga4", "meta", "ops"} {
			o, r := expect(e, dest, false)
			want[e.EventID+"/"+dest] = [2]string{o, r}
			if dest == "meta" && o == "forwarded" {
				require.Contains(t, e.Properties, "fbclid", "the sample must carry the field the new policy drops")
				metaForwarded = append(metaForwarded, e.EventID)
			}
		}
	}
	require.NotEmpty(t, metaForwarded)
	checkDecisions(t, p, want) // live decisions under v1 are in ClickHouse

	// Policy v2: meta no longer receives properties.fbclid.
	v1, err := os.ReadFile(filepath.Join(p.dir, "policy.yaml"))
	require.NoError(t, err)
	v2 := strings.Replace(string(v1), `version: "e2e-1"`, `version: "e2e-2"`, 1)
	v2 = strings.Replace(v2, ", properties.fbclid]", "]", 1)
	require.NotEqual(t, string(v1), v2)
	writeFile(t, filepath.Join(p.dir, "policy2.yaml"), v2)
	conf, err := os.ReadFile(filepath.Join(p.dir, "config.yaml"))
	require.NoError(t, err)
	writeFile(t, filepath.Join(p.dir, "config2.yaml"), strings.Replace(string(conf), "policy_file: policy.yaml", "policy_file: policy2.yaml", 1))
	config2 := filepath.Join(p.dir, "config2.yaml")

	out, errOut, code := p.run("replay", "--config", config2, "--from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	require.Equal(t, 0, code, "replay failed: %s", errOut)
	runID := strings.TrimSpace(out)
	require.Regexp(t, `^[0-9a-f-]{36}$`, runID)
	require.Regexp(t, `replay `+runID+`: \d+/\d+ records \(100\.0%\), \d+ records/s`, errOut, "progress display")
	require.Contains(t, errOut, "270 events in range, 810 decisions written")

	// The running pipeline's audit writer stores the replayed decisions.
	db := p.openDB()
	require.Eventually(t, func() bool {
		n, err := db.CountDecisions(context.Background(), runID)
		return err == nil && n == uint64(3*numEvents)
	}, 60*time.Second, 200*time.Millisecond)

	out, errOut, code = p.run("audit", "diff", "--config", config2, "--run", runID, "--format", "json", "--limit", "0")
	require.Equal(t, 0, code, errOut)
	var diff audit.DiffResult
	require.NoError(t, json.Unmarshal([]byte(out), &diff))
	require.Equal(t, uint64(3*numEvents), diff.Compared)
	require.Equal(t, uint64(len(metaForwarded)), diff.Changed)
	require.Equal(t, []audit.DiffCount{{Destination: "meta", LiveOutcome: "forwarded", LiveReason: "consented",
		ReplayOutcome: "forwarded", ReplayReason: "consented", FieldsChanged: true, Count: uint64(len(metaForwarded))}}, diff.Counts)
	var changed []string
	for _, r := range diff.Rows {
		require.Equal(t, "meta", r.Destination)
		require.Equal(t, []string{"properties.fbclid"}, r.FieldsRemoved)
		require.Empty(t, r.FieldsAdded)
		require.Equal(t, "e2e-1", r.Live.PolicyVersion)
		require.Equal(t, "e2e-2", r.Replay.PolicyVersion)
		changed = append(changed, r.EventID)
	}
	sort.Strings(changed)
	sort.Strings(metaForwarded)
	require.Equal(t, metaForwarded, changed)

	out, errOut, code = p.run("audit", "diff", "--config", config2, "--run", runID)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "810 decisions compared with live traffic, "+itoa(len(metaForwarded))+" would change")
	require.Contains(t, out, "properties.fbclid")

	// The user report of one user: every live decision, per destination, with its delivery.
	user := events[0].UserKey()
	var userEvents int
	for _, e := range events {
		if e.UserKey() == user {
			userEvents++
		}
	}
	waitDeliveries(t, p, 1)
	out, errOut, code = p.run("audit", "user", "--config", config2, "--id", user, "--format", "json")
	require.Equal(t, 0, code, errOut)
	var report struct {
		User      string                `json:"user"`
		Decisions []audit.UserReportRow `json:"decisions"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Equal(t, user, report.User)
	require.Len(t, report.Decisions, 3*userEvents)
	for _, d := range report.Decisions {
		require.Empty(t, d.RunID, "live decisions only")
		require.Equal(t, want[d.EventID+"/"+d.Destination], [2]string{d.Outcome, d.Reason})
	}

	// Usage errors exit 2 with one line.
	for _, args := range [][]string{
		{"audit", "diff", "--config", config2},
		{"audit", "blocked", "--config", config2, "--since", "yesterday"},
		{"audit", "summary", "--config", config2, "--format", "xml"},
		{"audit", "user", "--config", config2},
		{"audit", "user", "--config", config2, "--id", "x", "--bogus"},
	} {
		_, errOut, code := p.run(args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.Len(t, strings.Split(strings.TrimSpace(errOut), "\n"), 1, "%v: %s", args, errOut)
	}
	_, errOut, code = p.run("audit", "diff", "--config", config2, "--run", "no-such-run")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `no decisions with run id "no-such-run"`)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
