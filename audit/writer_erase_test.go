package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

func stateRecord(t testing.TB, cfg *config.Config, u schemas.ConsentUpdate) *kgo.Record {
	t.Helper()
	b, err := schemas.ConsentUpdates.Encode(&u)
	require.NoError(t, err)
	return &kgo.Record{Topic: cfg.Topic(config.TopicState), Partition: 1, Key: []byte(u.UserKey), Value: b}
}

// An erasure reaches ClickHouse through the consent-state changelog: the writer deletes the
// user's decisions and deliveries, keeps everyone else's, drops late decisions of the user that
// predate the erasure and keeps the "erased" ones, and never logs the user key.
func TestWriterErasesUsersFromConsentState(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	createTopics(t, cfg)
	db := openDB(t, cfg)
	group := testGroup(t, cfg)
	p := producer(t, cfg)
	log, logs := testLogger(t)
	w := startWriter(t, cfg, group, log)

	dec := func(i int, user, reason string) schemas.Decision {
		d := testDecision(i)
		d.UserKey, d.Reason = user, reason
		return d
	}
	produce(t, p,
		decisionRecord(t, cfg, 0, dec(1, "ann-secret", "consented")),
		decisionRecord(t, cfg, 1, dec(2, "ann-secret", "no_consent")),
		decisionRecord(t, cfg, 2, dec(3, "bob", "consented")),
		deliveryRecord(t, cfg, 0, schemas.Delivery{EventID: dec(1, "", "").EventID, Destination: "ga4", Attempt: 1, Status: "delivered", AtMs: 1000}),
		deliveryRecord(t, cfg, 0, schemas.Delivery{EventID: dec(3, "", "").EventID, Destination: "meta", Attempt: 1, Status: "delivered", AtMs: 1000}),
		stateRecord(t, cfg, schemas.ConsentUpdate{UserKey: "bob", Consent: map[string]bool{"analytics": true}}),
	)
	require.Eventually(t, func() bool { return count(t, db, "") == 3 && countDeliveries(t, db) == 2 }, waitFor, 50*time.Millisecond)

	// The erasure, with a decision made after it in the same batch: that one is evidence, kept.
	evidence := dec(6, "ann-secret", "erased")
	produce(t, p, stateRecord(t, cfg, schemas.ConsentUpdate{UserKey: "ann-secret", Consent: map[string]bool{}, Erased: true}),
		decisionRecord(t, cfg, 2, evidence))
	require.Eventually(t, func() bool { return count(t, db, "") == 2 && countDeliveries(t, db) == 1 }, waitFor, 50*time.Millisecond)
	rows := readDecisions(t, db, "decisions")
	require.Equal(t, "bob", rows[dec(3, "", "").DecisionID].UserKey)
	require.Contains(t, rows, evidence.DecisionID)

	// Late arrivals: a decision made before the erasure is dropped, one made after it (reason
	// erased) is kept as evidence.
	late, after := dec(4, "ann-secret", "consented"), dec(5, "ann-secret", "erased")
	produce(t, p, decisionRecord(t, cfg, 0, late), decisionRecord(t, cfg, 1, after))
	end := endOffsets(t, cfg)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
	rows = readDecisions(t, db, "decisions")
	require.Len(t, rows, 3)
	require.Contains(t, rows, after.DecisionID)
	require.NotContains(t, rows, late.DecisionID)

	require.NoError(t, w.stop())
	for _, e := range logs.AllUntimed() {
		require.NotContains(t, e.Message, "ann-secret")
		for k, v := range e.ContextMap() {
			require.NotContains(t, strings.ToLower(k+"="+toString(v)), "ann-secret")
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// A writer started later, with the erasure already listed by another writer (or `tollgate
// erase`), still drops the user's late decisions: the list is read from ClickHouse.
func TestWriterDropsDecisionsOfUsersErasedElsewhere(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	createTopics(t, cfg)
	db := openDB(t, cfg)
	require.NoError(t, db.EraseUser(context.Background(), "carl"))
	group := testGroup(t, cfg)
	p := producer(t, cfg)
	log, _ := testLogger(t)
	d1, d2 := testDecision(1), testDecision(2)
	d1.UserKey, d2.UserKey = "carl", "dora"
	produce(t, p, decisionRecord(t, cfg, 0, d1), decisionRecord(t, cfg, 0, d2))
	w := startWriter(t, cfg, group, log)
	end := endOffsets(t, cfg)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())
	rows := readDecisions(t, db, "decisions")
	require.Len(t, rows, 1)
	require.Contains(t, rows, d2.DecisionID)
}

// The writer runs the retention job at start and on its interval.
func TestWriterRunsRetention(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ClickHouse.Retention = config.Retention{AnonymizeAfter: 90 * 24 * time.Hour, DropAfter: 365 * 24 * time.Hour, Interval: 200 * time.Millisecond}
	createTopics(t, cfg)
	db := openDB(t, cfg)
	old, ancient, recent := testDecision(1), testDecision(2), testDecision(3)
	old.DecidedMs = time.Now().AddDate(0, 0, -120).UnixMilli()
	ancient.DecidedMs = time.Now().AddDate(0, 0, -400).UnixMilli()
	recent.DecidedMs = time.Now().UnixMilli()
	require.NoError(t, db.InsertDecisions(context.Background(), []schemas.Decision{old, ancient, recent}))
	log, _ := testLogger(t)
	w := startWriter(t, cfg, testGroup(t, cfg), log)
	require.Eventually(t, func() bool {
		rows := readDecisions(t, db, "decisions")
		return len(rows) == 2 && rows[old.DecisionID].UserKey == "" && rows[recent.DecisionID].UserKey == recent.UserKey
	}, waitFor, 50*time.Millisecond)
	// A row back-dated after the first run is handled by a later one.
	older := testDecision(4)
	older.DecidedMs = time.Now().AddDate(0, 0, -100).UnixMilli()
	require.NoError(t, db.InsertDecisions(context.Background(), []schemas.Decision{older}))
	require.Eventually(t, func() bool { return readDecisions(t, db, "decisions")[older.DecisionID].UserKey == "" }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())
}
