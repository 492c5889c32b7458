package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/report"
)

// The wrong policy of TestRepairAfterPolicyFix: US-CA is opt_in (so Meta, marketing, is blocked
// for Californians who made no choice, where the law lets it run until they opt out), and GA4
// receives properties.health_plan. The fix undoes both.
func wrongPolicy(policy string) string {
	policy = strings.Replace(policy, "US-CA:   {model: opt_out}", "US-CA:   {model: opt_in}", 1)
	policy = strings.Replace(policy, "properties.currency, properties.session_id]", "properties.currency, properties.session_id, properties.health_plan]", 1)
	return policy + "labels:\n  properties.health_plan: health insurance plan\n"
}

func fixedPolicy(wrong string) string {
	fixed := strings.Replace(wrong, `version: "e2e-1"`, `version: "e2e-2"`, 1)
	fixed = strings.Replace(fixed, "US-CA:   {model: opt_in}", "US-CA:   {model: opt_out}", 1)
	return strings.Replace(fixed, ", properties.health_plan]", "]", 1)
}

// caEvents are purchases of a Californian who allowed analytics and said nothing about
// marketing, at the given age.
func caEvents(user, tag string, n int, age time.Duration) []sample.Event {
	out := make([]sample.Event, n)
	for i := range out {
		out[i] = sample.Event{
			EventID: fmt.Sprintf("ev-%s-%s-%d", user, tag, i), Event: "purchase", UserID: "u-" + user,
			Timestamp:    time.Now().Add(-age).Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339),
			Consent:      map[string]bool{"necessary": true, "analytics": true},
			Jurisdiction: "US-CA",
			Context:      map[string]any{"page_url": "https://shop.example/checkout", "user_agent": "test"},
			Properties:   map[string]any{"order_value": 10.0, "currency": "USD", "email": user + "@example.com"},
		}
	}
	return out
}

// TestRepairAfterPolicyFix is CONTRACT §9's repair and exposure report end to end: live traffic
// under a policy that wrongly blocks Meta for US-CA users and wrongly sends a field to GA4; the
// policy is fixed, replayed, diffed and repaired. Meta receives exactly the newly allowed events
// inside its 7-day window, once each, with their original event time; older ones are counted
// too_old; a user who withdrew in between is not sent; a second repair sends nothing; the
// exposure report names GA4, the field and the users.
func TestRepairAfterPolicyFix(t *testing.T) {
	t.Parallel()
	p := startPipelineWithPolicy(t, wrongPolicy)
	const n = 4
	recent := append(caEvents("ca1", "recent", n, time.Hour), caEvents("ca2", "recent", n, 2*time.Hour)...)
	threeDays := caEvents("ca3", "3d", n, 3*24*time.Hour)
	tooOld := caEvents("ca4", "8d", n, 8*24*time.Hour)
	withdrawer := caEvents("ca5", "recent", n, time.Hour)
	eu := append(userEvents("eu1", "plan", n), userEvents("eu2", "plan", n)...)
	for i := range eu {
		eu[i].Properties["health_plan"] = "gold"
	}
	all := slices.Concat(recent, threeDays, tooOld, withdrawer, eu)
	sent, err := sample.Send(p.ingestURL, writeKey, all)
	require.NoError(t, err)
	require.Equal(t, len(all), sent)
	waitDecisions(t, p, "run_id = ''", 3*len(all))
	got := decisionCounts(t, p)
	require.Equal(t, n, got["u-ca1/meta/blocked/no_consent"], "the wrong policy blocks Meta for Californians")
	require.Equal(t, n, got["u-eu1/ga4/forwarded/consented"])

	// ca5 withdraws marketing after the live decisions; a later event of theirs, decided
	// blocked/withdrawn, shows the processor has written the withdrawal.
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/consent", writeKey,
		map[string]any{"user_id": "u-ca5", "consent": map[string]bool{"marketing": false}}, false, nil))
	after := caEvents("ca5", "after", 1, 0)
	_, err = sample.Send(p.ingestURL, writeKey, after)
	require.NoError(t, err)
	waitDecisions(t, p, "user_key = 'u-ca5' AND reason = 'withdrawn' AND run_id = ''", 1)

	// The fix, replayed over the last ten days.
	wrong, err := os.ReadFile(filepath.Join(p.dir, "policy.yaml"))
	require.NoError(t, err)
	writeFile(t, filepath.Join(p.dir, "policy2.yaml"), fixedPolicy(string(wrong)))
	conf, err := os.ReadFile(p.configPath())
	require.NoError(t, err)
	config2 := filepath.Join(p.dir, "config2.yaml")
	writeFile(t, config2, strings.Replace(string(conf), "policy_file: policy.yaml", "policy_file: policy2.yaml", 1))
	out, errOut, code := p.run("replay", "--config", config2, "--from", time.Now().Add(-10*24*time.Hour).UTC().Format(time.RFC3339))
	require.Equal(t, 0, code, errOut)
	runID := strings.TrimSpace(out)
	total := len(all) + len(after)
	db := p.openDB()
	require.Eventually(t, func() bool {
		got, err := db.CountDecisions(context.Background(), runID)
		return err == nil && got == uint64(3*total)
	}, 60*time.Second, 200*time.Millisecond)

	// The diff shows both mistakes.
	out, errOut, code = p.run("audit", "diff", "--config", config2, "--run", runID, "--format", "json", "--limit", "0")
	require.Equal(t, 0, code, errOut)
	var diff audit.DiffResult
	require.NoError(t, json.Unmarshal([]byte(out), &diff))
	byKind := map[string]uint64{}
	for _, c := range diff.Counts {
		byKind[fmt.Sprintf("%s %s/%s -> %s/%s fields:%v", c.Destination, c.LiveOutcome, c.LiveReason, c.ReplayOutcome, c.ReplayReason, c.FieldsChanged)] = c.Count
	}
	candidates := len(recent) + len(threeDays) + len(tooOld) + len(withdrawer)
	require.Equal(t, uint64(candidates), byKind["meta blocked/no_consent -> forwarded/consented fields:true"], "%v", byKind)
	require.Equal(t, uint64(len(eu)), byKind["ga4 forwarded/consented -> forwarded/consented fields:true"], "%v", byKind)

	// A dry run counts and sends nothing.
	metaBefore := len(p.meta.Requests())
	want := fmt.Sprintf("repaired %d: sent %d, too_old %d, withdrawn %d, erased 0, already_delivered 0, failed 0",
		candidates, len(recent)+len(threeDays), len(tooOld), len(withdrawer))
	out, errOut, code = p.run("repair", "--config", config2, "--run", runID, "--dry-run")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, want+"\n", out)
	require.Contains(t, errOut, "dry run, nothing sent")
	require.Len(t, p.meta.Requests(), metaBefore, "a dry run sends nothing")

	// The repair. --yield-cpu=0: under make test the other packages' tests keep both cores busy,
	// and a repair that waits for them to leave room would only slow this test down.
	out, errOut, code = p.run("repair", "--config", config2, "--run", runID, "--yield-cpu=0")
	require.Equal(t, 0, code, errOut)
	t.Logf("repair: %s%s", out, errOut)
	require.Equal(t, want+"\n", out, errOut)
	require.Regexp(t, `repair `+runID+`: \d+/\d+ events \(100\.0%\), \d+ events/s, done`, errOut, "progress with a rate and an estimate")
	wantTimes := map[string]int64{}
	for _, e := range slices.Concat(recent, threeDays) {
		ts, err := time.Parse(time.RFC3339, e.Timestamp)
		require.NoError(t, err)
		wantTimes[e.EventID] = ts.Unix()
	}
	require.Equal(t, wantTimes, metaEventTimes(t, p.meta.Requests()[metaBefore:]),
		"Meta gets exactly the newly allowed events inside its window, once each, with their original event time")

	// A second repair sends nothing: the ledger holds every event the first one delivered.
	metaBefore = len(p.meta.Requests())
	out, errOut, code = p.run("repair", "--config", config2, "--run", runID, "--yield-cpu=0")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, fmt.Sprintf("repaired %d: sent 0, too_old %d, withdrawn %d, erased 0, already_delivered %d, failed 0\n",
		candidates, len(tooOld), len(withdrawer), len(recent)+len(threeDays)), out)
	require.Len(t, p.meta.Requests(), metaBefore)

	// Usage errors: one line, exit 2.
	for _, args := range [][]string{
		{"repair", "--config", config2},
		{"repair", "--config", config2, "--run", "no-such-run"},
		{"repair", "--config", config2, "--run", runID, "--destination", "myspace"},
	} {
		_, errOut, code := p.run(args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.Len(t, strings.Split(strings.TrimSpace(errOut), "\n"), 1, "%v: %s", args, errOut)
	}
	// The wrong policy did not decide this run.
	_, errOut, code = p.run("repair", "--config", p.configPath(), "--run", runID)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `decided under policy version [e2e-2], the policy now configured is "e2e-1"`)

	checkRepairAudit(t, p, config2, runID, slices.Sorted(maps.Keys(wantTimes)))
	checkExposure(t, p, config2, runID, len(eu))
}

// metaEventTimes reads event id → event_time of every event in Meta requests the stand-in took.
func metaEventTimes(t *testing.T, reqs []standin.Request) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, r := range reqs {
		if !r.Accepted {
			continue
		}
		var body struct {
			Data []struct {
				EventID   string `json:"event_id"`
				EventTime int64  `json:"event_time"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		for _, e := range body.Data {
			_, twice := out[e.EventID]
			require.False(t, twice, "Meta got %s twice", e.EventID)
			out[e.EventID] = e.EventTime
		}
	}
	return out
}

// checkRepairAudit: each repaired event has one delivered row carrying the run id, and audit
// summary --run counts the repair's attempts.
func checkRepairAudit(t *testing.T, p *pipeline, config, runID string, repaired []string) {
	t.Helper()
	db := p.openDB()
	require.Eventually(t, func() bool {
		var n uint64
		err := db.QueryRow(context.Background(), "SELECT count() FROM "+p.db+".deliveries FINAL WHERE destination = 'meta' AND status = 'delivered' AND has(?, event_id)",
			repaired).Scan(&n)
		return err == nil && n == uint64(len(repaired))
	}, 60*time.Second, 200*time.Millisecond, "one delivered row per repaired event")
	var ids []string
	require.NoError(t, db.QueryRow(context.Background(), "SELECT groupArray(event_id) FROM "+p.db+".deliveries FINAL WHERE run_id = ? AND status = 'delivered'",
		runID).Scan(&ids))
	require.ElementsMatch(t, repaired, ids, "the repair's delivered rows carry its run id, and only they")

	out, errOut, code := p.run("audit", "summary", "--config", config, "--run", runID, "--format", "json")
	require.Equal(t, 0, code, errOut)
	var sum struct {
		Decisions  []audit.SummaryRow         `json:"decisions"`
		Deliveries []audit.DeliverySummaryRow `json:"deliveries"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.Contains(t, sum.Deliveries, audit.DeliverySummaryRow{Destination: "meta", Status: "delivered", Count: uint64(len(repaired))})
	require.NotEmpty(t, sum.Decisions, "the run's decisions")
	for _, r := range sum.Deliveries {
		require.Equal(t, "meta", r.Destination, "only meta was repaired: %+v", sum.Deliveries)
	}
}

// checkExposure: the exposure report names GA4, the field the fixed policy strips and the
// users it was sent about, field by field, in JSON, CSV and HTML.
func checkExposure(t *testing.T, p *pipeline, config, runID string, euEvents int) {
	t.Helper()
	out, errOut, code := p.run("report", "exposure", "--config", config, "--run", runID, "--format", "json", "--users")
	require.Equal(t, 0, code, errOut)
	var exp report.Exposure
	require.NoError(t, json.Unmarshal([]byte(out), &exp))
	require.Equal(t, []string{"e2e-2"}, exp.PolicyVersions)
	byName := map[string]report.ExposureDestination{}
	for _, d := range exp.Destinations {
		byName[d.Name] = d
	}
	require.Equal(t, []string{"ga4", "meta", "ops"}, slices.Sorted(maps.Keys(byName)))
	ga4 := byName["ga4"]
	require.Empty(t, ga4.Blocked)
	require.Len(t, ga4.Fields, 1, "%+v", ga4.Fields)
	f := ga4.Fields[0]
	require.Equal(t, "properties.health_plan", f.Path)
	require.Equal(t, "health insurance plan", f.Label, "the policy's label")
	require.Equal(t, uint64(euEvents), f.Events)
	require.Equal(t, uint64(2), f.Users)
	require.Equal(t, []string{"u-eu1", "u-eu2"}, f.UserKeys)
	require.Equal(t, uint64(2), ga4.Users)
	require.Equal(t, []string{"u-eu1", "u-eu2"}, ga4.UserKeys)
	require.False(t, f.First.IsZero())
	require.False(t, f.Last.Before(f.First))
	for _, name := range []string{"meta", "ops"} {
		require.Empty(t, byName[name].Blocked, name)
		require.Empty(t, byName[name].Fields, name)
		require.Zero(t, byName[name].Users, name)
	}

	out, errOut, code = p.run("report", "exposure", "--config", config, "--run", runID, "--format", "csv")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.True(t, strings.HasPrefix(lines[1], fmt.Sprintf("ga4,field,properties.health_plan,health insurance plan,%d,2,", euEvents)), lines[1])

	html := filepath.Join(p.dir, "exposure.html")
	_, errOut, code = p.run("report", "exposure", "--config", config, "--run", runID, "--users", "--out", html)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(html)
	require.NoError(t, err)
	page := string(b)
	require.Contains(t, page, `health insurance plan <small class="path"><code>properties.health_plan</code></small>`)
	require.Contains(t, page, "<code>u-eu1</code>, <code>u-eu2</code>")
	require.Contains(t, page, "<h2>ga4 <span")
	for _, bad := range []string{"<script", "<link", "http://", "src="} {
		require.NotContains(t, page, bad, "self-contained")
	}
}
