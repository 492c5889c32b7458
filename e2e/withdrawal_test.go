package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// TestWithdrawalBlocksQueuedEvents: events are queued in the raw topic while no processor runs;
// then one user withdraws marketing and another is erased, and both are acknowledged. The events
// queued before those requests are processed after them, so docs/consent.md says the withdrawal and
// the erasure cover them, whatever consent the events themselves carry.
func TestWithdrawalBlocksQueuedEvents(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.spawn("ingest", nil, "ingest")
	p.waitReady()

	const perUser = 40
	var events []sample.Event
	for _, user := range []string{"withdrawn", "erased", "control"} {
		events = append(events, userEvents(user, "queued", perUser)...)
	}
	n, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	require.Equal(t, len(events), n)
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/consent", writeKey,
		map[string]any{"user_id": "u-withdrawn", "consent": map[string]bool{"marketing": false}}, false, nil))
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/erase", writeKey, map[string]any{"user_id": "u-erased"}, false, nil))

	// Only now does anything process the queue.
	p.spawn("processor", []string{"TOLLGATE_PROCESSOR_INSTANCE=w"}, "process")
	p.spawn("sinks", nil, "sink")
	p.spawn("audit", nil, "audit")

	waitDecisions(t, p, "run_id = ''", 3*len(events))
	got := decisionCounts(t, p)
	want := map[string]int{
		"u-withdrawn/meta/blocked/withdrawn":  perUser, // the withdrawal covers marketing only
		"u-withdrawn/ga4/forwarded/consented": perUser,
		"u-withdrawn/ops/forwarded/necessary": perUser,
		"u-erased/meta/blocked/erased":        perUser, // an erasure covers everything, necessary too
		"u-erased/ga4/blocked/erased":         perUser,
		"u-erased/ops/blocked/erased":         perUser,
		"u-control/meta/forwarded/consented":  perUser,
		"u-control/ga4/forwarded/consented":   perUser,
		"u-control/ops/forwarded/necessary":   perUser,
	}
	require.Equal(t, want, got)

	// Meta receives the control user's events and nothing of the other two.
	require.Eventually(t, func() bool { return len(p.meta.EventIDs()) >= perUser }, time.Minute, 100*time.Millisecond)
	for _, id := range p.meta.EventIDs() {
		require.True(t, strings.HasPrefix(id, "ev-control-queued-"), "meta received %s", id)
	}
}

// decisionCounts counts live decisions by user/destination/outcome/reason.
func decisionCounts(t *testing.T, p *pipeline) map[string]int {
	rows, err := p.openDB().Query(context.Background(), "SELECT user_key, destination, outcome, reason, count() FROM "+p.db+
		".decisions FINAL WHERE run_id = '' GROUP BY user_key, destination, outcome, reason")
	require.NoError(t, err)
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var user, dest, outcome, reason string
		var n uint64
		require.NoError(t, rows.Scan(&user, &dest, &outcome, &reason, &n))
		got[user+"/"+dest+"/"+outcome+"/"+reason] = int(n)
	}
	require.NoError(t, rows.Err())
	return got
}

// TestEraseCommand: `tollgate erase --user` reports who had the user's data, deletes their audit
// rows, and blocks the user's later events everywhere.
func TestEraseCommand(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	before := userEvents("erase-me", "before", 10)
	n, err := sample.Send(p.ingestURL, writeKey, before)
	require.NoError(t, err)
	require.Equal(t, len(before), n)
	waitDeliveries(t, p, 3*len(before)) // ga4, meta and ops each got all ten

	erase := exec.Command(binary, "erase", "--config", p.configPath(), "--user", "u-erase-me")
	erase.Env = p.env()
	out, err := erase.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "destinations that had received data about the user: ga4, meta, ops")
	var left uint64
	require.NoError(t, p.openDB().QueryRow(context.Background(),
		"SELECT count() FROM "+p.db+".decisions FINAL WHERE user_key = 'u-erase-me' AND outcome = 'forwarded'").Scan(&left))
	require.Zero(t, left, "the user's audit rows are deleted")

	after := userEvents("erase-me", "after", 10)
	_, err = sample.Send(p.ingestURL, writeKey, after)
	require.NoError(t, err)
	waitDecisions(t, p, "user_key = 'u-erase-me' AND reason = 'erased'", 3*len(after))
	for _, id := range append(p.meta.EventIDs(), p.ga4.EventIDs()...) {
		require.NotContains(t, id, "-after-", "an event after the erasure reached a vendor")
	}
}

// userEvents returns n fully consented EU purchases of one user.
func userEvents(user, tag string, n int) []sample.Event {
	out := make([]sample.Event, n)
	for i := range out {
		out[i] = sample.Event{
			EventID: fmt.Sprintf("ev-%s-%s-%d", user, tag, i), Event: "purchase", UserID: "u-" + user,
			Consent:      map[string]bool{"necessary": true, "analytics": true, "marketing": true},
			Jurisdiction: "EU",
			Context:      map[string]any{"page_url": "https://shop.example/checkout", "user_agent": "test"},
			Properties:   map[string]any{"order_value": 10.0, "currency": "EUR", "email": "a@example.com", "phone": "+1 555 0100", "session_id": "s1"},
		}
	}
	return out
}
