package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/deploy/harness"
	"github.com/tollgate-dev/tollgate/internal/sample"
)

// TestHoldUntilTheChoice (CONTRACT §9 "Pre-consent hold"), on the real services with the policy
// `hold: {window: 10m, max_events_per_user: 5}`:
//   - five events before the choice, then an event that grants: the vendors receive all five, in
//     order, before the granting one, with held_ms > 0;
//   - a refusal through /v1/consent blocks the held events with the refusal's reason (withdrawn);
//   - past the cap the oldest events are decided at once (no_consent), the rest wait;
//   - five events and their user's grant in one request, with processor.queued_choices: the grant
//     is queued behind them when the processor reaches them, so they are decided at once under it
//     (releases{cause="queued"}),
//     with the same decisions, order and held_ms > 0 as when held;
//   - the processor is killed with SIGKILL while events are held: none is lost or decided twice;
//   - a user who never answers: another processor, with an empty state directory and its clock
//     past the window (TOLLGATE_TEST_CLOCK_SKEW, no sleep), restores the held events (from the
//     changelog and the raw topic) and blocks the five no_consent, held_ms ≥ the window.
func TestHoldUntilTheChoice(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	path := filepath.Join(p.dir, "policy.yaml")
	pol, err := os.ReadFile(path)
	require.NoError(t, err)
	writeFile(t, path, string(pol)+"hold:\n  window: 10m\n  max_events_per_user: 5\n")
	p.spawn("ingest", nil, "ingest")
	p.waitReady()
	p.spawn("sinks", nil, "sink")
	p.spawn("audit", nil, "audit")
	metrics := harness.FreeAddr()
	// processor.queued_choices on (off by default): the queued user below is decided at once.
	proc := p.spawn("processor", []string{"TOLLGATE_PROCESSOR_INSTANCE=h", "TOLLGATE_METRICS_LISTEN=" + metrics,
		"TOLLGATE_PROCESSOR_QUEUED_CHOICES=true"}, "process")

	// Before any choice: the necessary destination (ops) is decided at once, the others wait.
	var first []sample.Event
	for user, n := range map[string]int{"grant": 5, "refuse": 5, "cap": 7, "silent": 5} {
		first = append(first, undecided(user, n)...)
	}
	send(t, p, first)
	waitDecisions(t, p, "destination = 'ops'", len(first))
	require.Zero(t, countRows(t, p, "destination != 'ops' AND user_key != 'u-cap'"), "held, not decided")
	require.Equal(t, uint64(4), countRows(t, p, "destination != 'ops' AND user_key = 'u-cap' AND reason = 'no_consent'"),
		"past the cap of 5 the two oldest of seven are decided at once, for ga4 and meta")

	proc.Kill9() // with 17 events held
	proc.start()

	grant := map[string]bool{"analytics": true, "marketing": true}
	later := []sample.Event{withConsent(undecided("grant", 6)[5], grant), withConsent(undecided("cap", 8)[7], grant)}
	// A user whose choice comes in the same request as the events before it: the choice is queued
	// behind them when the processor reaches them, so they are decided at once under it.
	queued := append(undecided("queued", 5), withConsent(undecided("queued", 6)[5], grant))
	send(t, p, append(later, queued...))
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/consent", writeKey,
		map[string]any{"user_id": "u-refuse", "consent": map[string]bool{"analytics": false, "marketing": false}}, false, nil))
	waitDecisions(t, p, "destination != 'ops' AND user_key IN ('u-grant', 'u-cap', 'u-refuse', 'u-queued')", 2*(6+8+5+6))

	got := decisionCounts(t, p)
	for k, n := range map[string]int{
		"u-grant/ga4/forwarded/consented": 6, "u-grant/meta/forwarded/consented": 6,
		"u-refuse/ga4/blocked/withdrawn": 5, "u-refuse/meta/blocked/withdrawn": 5,
		"u-cap/ga4/blocked/no_consent": 2, "u-cap/ga4/forwarded/consented": 6, "u-cap/meta/forwarded/consented": 6,
		"u-silent/ops/forwarded/necessary": 5,
		"u-queued/ga4/forwarded/consented": 6, "u-queued/meta/forwarded/consented": 6,
	} {
		require.Equal(t, n, got[k], k)
	}
	require.Zero(t, got["u-silent/meta/blocked/no_consent"], "the silent user's events still wait")
	require.Equal(t, uint64(10), countRows(t, p, "user_key = 'u-grant' AND destination != 'ops' AND held_ms > 0"))
	require.Equal(t, uint64(3), countRows(t, p, "user_key = 'u-grant' AND held_ms = 0 AND event_id = 'ev-grant-5'"), "the granting event was not held")
	require.Equal(t, uint64(10), countRows(t, p, "user_key = 'u-queued' AND destination != 'ops' AND held_ms > 0"), "the events before a queued choice waited for it")
	require.Equal(t, 5.0, processorMetric(t, metrics, `tollgate_processor_hold_releases_total{cause="queued"}`), "decided at once under the queued choice, not held")

	// The vendors got the five held events in order, before the granting one, once each.
	require.Eventually(t, func() bool { return len(idsOf(p.meta.EventIDs(), "ev-grant-")) == 6 }, time.Minute, 100*time.Millisecond)
	require.Equal(t, []string{"ev-grant-0", "ev-grant-1", "ev-grant-2", "ev-grant-3", "ev-grant-4", "ev-grant-5"}, idsOf(p.meta.EventIDs(), "ev-grant-"))
	require.Eventually(t, func() bool { return len(idsOf(p.meta.EventIDs(), "ev-cap-")) == 6 }, time.Minute, 100*time.Millisecond)
	require.Equal(t, []string{"ev-cap-2", "ev-cap-3", "ev-cap-4", "ev-cap-5", "ev-cap-6", "ev-cap-7"}, idsOf(p.meta.EventIDs(), "ev-cap-"))
	require.Eventually(t, func() bool { return len(idsOf(p.meta.EventIDs(), "ev-queued-")) == 6 }, time.Minute, 100*time.Millisecond)
	require.Equal(t, []string{"ev-queued-0", "ev-queued-1", "ev-queued-2", "ev-queued-3", "ev-queued-4", "ev-queued-5"}, idsOf(p.meta.EventIDs(), "ev-queued-"))
	for _, id := range p.meta.EventIDs() {
		require.False(t, strings.HasPrefix(id, "ev-refuse-") || strings.HasPrefix(id, "ev-silent-"), "meta received %s", id)
	}

	// The silent user: the window passes (the processor's clock moved past it), no traffic. The
	// new processor is another instance with an empty state directory: it restores the held
	// events from their changelog and fetches them from the raw topic.
	proc.Kill9()
	cold := p.spawn("processor (clock +11m)", []string{"TOLLGATE_PROCESSOR_INSTANCE=h2", "TOLLGATE_TEST_CLOCK_SKEW=11m"}, "process")
	waitDecisions(t, p, "user_key = 'u-silent' AND destination != 'ops'", 10)
	require.Contains(t, cold.logs.String(), "held events fetched from the raw topic")
	require.Equal(t, uint64(10), countRows(t, p, "user_key = 'u-silent' AND reason = 'no_consent' AND held_ms >= 600000"))

	// Exactly once across the kills: one row per decision, as the processor wrote them.
	var rows, distinct uint64
	require.NoError(t, p.openDB().QueryRow(context.Background(), "SELECT count(), uniqExact(event_id, destination) FROM "+p.db+
		".decisions WHERE run_id = ''").Scan(&rows, &distinct))
	require.Equal(t, distinct, rows, "an event decided twice for a destination")
	require.Equal(t, uint64(3*(5+6+8+5+6)), distinct)
}

// processorMetric is the value of one sample (name with its labels, as exposed) on a
// processor's /metrics at addr.
func processorMetric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// undecided is n EU events of user made before any choice: no consent, no signal.
func undecided(user string, n int) []sample.Event {
	out := userEvents(user, "", n)
	for i := range out {
		out[i].EventID = fmt.Sprintf("ev-%s-%d", user, i)
		out[i].Consent = nil
	}
	return out
}

func withConsent(e sample.Event, c map[string]bool) sample.Event {
	e.Consent = c
	return e
}

func send(t *testing.T, p *pipeline, events []sample.Event) {
	t.Helper()
	n, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	require.Equal(t, len(events), n)
}

// countRows counts live decisions (FINAL) matching where.
func countRows(t *testing.T, p *pipeline, where string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, p.openDB().QueryRow(context.Background(), "SELECT count() FROM "+p.db+".decisions FINAL WHERE run_id = '' AND "+where).Scan(&n))
	return n
}

func idsOf(ids []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !strings.HasPrefix(id, prefix) })
}
