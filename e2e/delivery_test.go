package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

// consented returns n events of one user that every destination of the e2e policy forwards.
func consented(prefix, user string, n int) []sample.Event {
	out := make([]sample.Event, n)
	for i := range out {
		out[i] = sample.Event{
			EventID: fmt.Sprintf("%s-%s-%03d", prefix, user, i), Event: "purchase", UserID: user,
			Timestamp:    time.Now().UTC().Format(time.RFC3339Nano),
			Consent:      map[string]bool{"necessary": true, "analytics": true, "marketing": true},
			Jurisdiction: "EU",
			Context:      map[string]any{"page_url": "https://shop.example/checkout", "user_agent": "Mozilla/5.0 e2e"},
			Properties:   map[string]any{"order_value": 10, "currency": "EUR", "email": "Ann@Example.com"},
		}
	}
	return out
}

func ids(evs []sample.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

var dbs sync.Map // *pipeline -> *audit.DB

// statuses returns, per event id, the distinct delivery statuses of a destination in ClickHouse.
func statuses(t *testing.T, p *pipeline, dest string) map[string][]string {
	db, ok := dbs.Load(p)
	if !ok { // one connection per pipeline: the tests poll this many times
		db, _ = dbs.LoadOrStore(p, p.openDB())
		t.Cleanup(func() { dbs.Delete(p) })
	}
	rows, err := db.(*audit.DB).Query(context.Background(), "SELECT event_id, groupUniqArray(status) FROM "+p.db+
		".deliveries FINAL WHERE destination = ? GROUP BY event_id", dest)
	if err != nil {
		// The tables appear once the audit writer has migrated; callers poll. (No require here:
		// this runs inside require.Eventually's goroutine.)
		return nil
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id string
		var st []string
		require.NoError(t, rows.Scan(&id, &st))
		out[id] = st
	}
	require.NoError(t, rows.Err())
	return out
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// allHave reports whether every event has status s at dest.
func allHave(t *testing.T, p *pipeline, dest, s string, want []string) bool {
	st := statuses(t, p, dest)
	for _, id := range want {
		if !has(st[id], s) {
			return false
		}
	}
	return true
}

// tollgate runs a tollgate subcommand against the pipeline's config.
func (p *pipeline) tollgate(args ...string) (string, string, error) {
	cmd := exec.Command(binary, append(args, "--config", p.configPath())...)
	cmd.Env = p.env()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestMetaHanging: Meta hangs every request for 20 s, many times its request timeout (and the
// breaker's open time), so every attempt during the hang times out. Meanwhile traffic keeps
// coming; ingest answers 202 to all of it, and GA4 and the ops webhook deliver every wave of it
// (counted in the deliveries table) while Meta has taken nothing. When Meta answers again, it
// gets every one of its events.
func TestMetaHanging(t *testing.T) {
	t.Parallel()
	// Enough attempts that the breaker's probes during the hang cannot exhaust any event's. The
	// breaker probes and the retries wait at most 5 s (defaults 30 s): once Meta answers again
	// its events go within seconds, not after another half minute of breaker and backoff (each
	// attempt during the hang still lasts the 10 s request timeout).
	p := startPipelineEnv(t, "TOLLGATE_DELIVERY_MAX_ATTEMPTS=20", "TOLLGATE_DELIVERY_BREAKER_OPEN=5s", "TOLLGATE_DELIVERY_MAX_BACKOFF=5s")
	const hang = 20 * time.Second
	p.meta.SetFailures(standin.Fault{Hang: hang, Count: -1})
	hangStart := time.Now()
	var all []sample.Event
	for wave := 0; wave == 0 || time.Since(hangStart) < hang; wave++ {
		evs := consented(fmt.Sprintf("hang%d", wave), fmt.Sprintf("u%d", wave%7), 20)
		n, err := sample.Send(p.ingestURL, writeKey, evs)
		require.NoError(t, err, "ingest must answer 202 while Meta hangs")
		require.Equal(t, len(evs), n)
		all = append(all, evs...)
		require.Eventually(t, func() bool {
			return allHave(t, p, "ga4", "delivered", ids(evs)) && allHave(t, p, "ops", "delivered", ids(evs))
		}, 30*time.Second, 100*time.Millisecond, "GA4 and ops stopped delivering while Meta hangs (wave %d); logs:\n%s", wave, p.logs)
	}
	require.Less(t, time.Since(hangStart), hang+time.Minute, "the waves took far longer than the hang")
	require.Empty(t, p.meta.EventIDs(), "Meta hung: it cannot have taken anything")
	metaStatuses := statuses(t, p, "meta") // once: a query per event took longer than the hang
	for _, id := range ids(all) {
		require.NotContains(t, metaStatuses[id], "delivered")
	}
	t.Logf("%d events in %d waves went to GA4 and ops while Meta hung for %s", len(all), len(all)/20, time.Since(hangStart).Round(time.Second))

	p.meta.SetFailures()
	require.Eventually(t, func() bool { return allHave(t, p, "meta", "delivered", ids(all)) },
		90*time.Second, 200*time.Millisecond, "Meta's events were not delivered after it recovered; logs:\n%s", p.logs)
	got := map[string]bool{}
	for _, id := range p.meta.EventIDs() {
		got[id] = true
	}
	for _, id := range ids(all) {
		require.True(t, got[id], "Meta never accepted %s", id)
	}
}

// TestWithdrawalWhileMetaRetries: Meta answers 503 while a user's events wait in the retry topic;
// the user withdraws marketing through POST /v1/consent. Every waiting event ends blocked
// (withdrawn) and none reaches Meta, while another user's waiting events are delivered once
// Meta is back.
func TestWithdrawalWhileMetaRetries(t *testing.T) {
	t.Parallel()
	p := startPipelineEnv(t, "TOLLGATE_DELIVERY_MAX_ATTEMPTS=1000", "TOLLGATE_DELIVERY_MAX_BACKOFF=200ms", "TOLLGATE_DELIVERY_BREAKER_FAILURES=1000")
	p.meta.SetFailures(standin.Fault{Status: 503, Count: -1})
	quitter, stayer := consented("wd", "quitter", 10), consented("wd", "stayer", 10)
	_, err := sample.Send(p.ingestURL, writeKey, append(append([]sample.Event{}, quitter...), stayer...))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return allHave(t, p, "meta", "retrying", ids(quitter)) && allHave(t, p, "meta", "retrying", ids(stayer))
	}, 60*time.Second, 200*time.Millisecond, "events never went into retry; logs:\n%s", p.logs)

	require.NoError(t, sample.Withdraw(p.ingestURL, writeKey, quitter[0], "marketing"))
	require.Eventually(t, func() bool { return allHave(t, p, "meta", "blocked", ids(quitter)) },
		60*time.Second, 200*time.Millisecond, "waiting events were not blocked after the withdrawal; logs:\n%s", p.logs)
	p.meta.SetFailures()
	require.Eventually(t, func() bool { return allHave(t, p, "meta", "delivered", ids(stayer)) },
		60*time.Second, 200*time.Millisecond, "the other user's events were not delivered; logs:\n%s", p.logs)

	accepted := strings.Join(p.meta.EventIDs(), " ")
	for _, id := range ids(quitter) {
		require.NotContains(t, accepted, id, "a withdrawn event reached Meta")
	}
	require.Equal(t, fmt.Sprint(len(quitter)), strings.TrimSpace(chQuery(t, p, "SELECT count() FROM "+p.db+
		".deliveries FINAL WHERE destination = 'meta' AND status = 'blocked' AND error = 'withdrawn' AND event_id LIKE 'wd-quitter-%'")))
}

// TestDLQReplay: Meta refuses two events for good; they are dead-lettered (the rest of their
// batch is delivered), listed by `tollgate dlq list`, and after the stand-in is fixed
// `tollgate dlq replay` delivers them. The audit shows both ends; a second replay has nothing
// left to do.
func TestDLQReplay(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	evs := consented("dlq", "u1", 12)
	bad := []string{evs[3].EventID, evs[8].EventID}
	p.meta.RejectEvents(bad...)
	_, err := sample.Send(p.ingestURL, writeKey, evs)
	require.NoError(t, err)
	good := slices.Concat(ids(evs[:3]), ids(evs[4:8]), ids(evs[9:]))
	// Every event's outcome, not only the first few: the good ones may go in a later request
	// than the bad ones' (the audit reads each request's rows as they come).
	require.Eventually(t, func() bool {
		return allHave(t, p, "meta", "dead_lettered", bad) && allHave(t, p, "meta", "delivered", good)
	}, 60*time.Second, 200*time.Millisecond, "logs:\n%s", p.logs)
	st := statuses(t, p, "meta")
	for _, id := range good {
		require.False(t, has(st[id], "dead_lettered"), "only the bad events are dead-lettered: %s is too", id)
	}

	out, errOut, err := p.tollgate("dlq", "list", "--destination", "meta")
	require.NoError(t, err, errOut)
	require.Contains(t, out, "OFFSET")
	for _, id := range bad {
		require.Contains(t, out, id)
	}
	require.Contains(t, out, "graph_error_100")
	require.Regexp(t, `total\s+2`, out)

	p.meta.Reset() // the "fix": Meta now takes them
	out, errOut, err = p.tollgate("dlq", "replay", "--destination", "meta", "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	require.NoError(t, err, errOut)
	require.Contains(t, out, "replayed 2: delivered 2, blocked 0, dead_lettered 0")
	require.Contains(t, errOut, "2 of 2 done")
	require.ElementsMatch(t, bad, p.meta.EventIDs())
	require.Eventually(t, func() bool { return allHave(t, p, "meta", "delivered", bad) }, 30*time.Second, 200*time.Millisecond)
	for _, id := range bad {
		require.Contains(t, statuses(t, p, "meta")[id], "dead_lettered", "the audit keeps the first end too")
	}

	out, errOut, err = p.tollgate("dlq", "replay", "--destination", "meta")
	require.NoError(t, err, errOut)
	require.Contains(t, out, "replayed 0:")

	_, errOut, err = p.tollgate("dlq", "replay", "--destination", "nope")
	require.Error(t, err)
	require.Equal(t, 2, err.(*exec.ExitError).ExitCode(), errOut)
	require.Contains(t, errOut, `--destination "nope"`)
}
