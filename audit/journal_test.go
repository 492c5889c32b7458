package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// A sink's delivery journal is an audit topic too: each request's outcome there is its
// deliveries rows (one per event, none for an intent or an event recorded unsent), beside the
// per-event records of the deliveries topic; a LedgerEntry from before the journal is skipped
// without a fuss.
func TestWriterReadsJournalOutcomesAsDeliveries(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Policy = &policy.Policy{Names: []string{"ga4"}}
	createTopics(t, cfg)
	journal := cfg.Topic(config.LedgerTopic("ga4"))
	cl := producer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := kadm.NewClient(cl).CreateTopics(ctx, int32(cfg.Kafka.Partitions), 1, nil, journal)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), journal) })
	db := openDB(t, cfg)
	group := testGroup(t, cfg)

	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC).UnixMilli()
	rec := func(j schemas.JournalRecord) *kgo.Record {
		b, err := schemas.Journal.Encode(&j)
		require.NoError(t, err)
		return &kgo.Record{Topic: journal, Partition: 1, Key: []byte(j.RequestID), Value: b}
	}
	old, err := schemas.LedgerEntries.Encode(&schemas.LedgerEntry{EventID: "old"})
	require.NoError(t, err)
	produce(t, cl,
		&kgo.Record{Topic: journal, Partition: 0, Key: []byte("old"), Value: old},
		rec(schemas.JournalRecord{Kind: schemas.JournalIntent, RequestID: "r1", Destination: "ga4", Events: []schemas.JournalEvent{{EventID: "e1", Attempt: 1}}}),
		rec(schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r1", Destination: "ga4", AtMs: at, HTTPStatus: 204, LatencyMs: 12,
			Events: []schemas.JournalEvent{{EventID: "e1", Attempt: 1, Status: "delivered"}, {EventID: "e2", Attempt: 2, Status: schemas.JournalStatusUnsent}}}),
		rec(schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r2", Destination: "ga4", AtMs: at,
			Events: []schemas.JournalEvent{{EventID: "e3", Attempt: 1, Status: "in_doubt", Error: "no_outcome_recorded"}}}),
		deliveryRecord(t, cfg, 2, schemas.Delivery{EventID: "e4", Destination: "ga4", Status: "blocked", Error: "withdrawn", AtMs: at, DeliveryID: "d4"}),
	)
	log, _ := testLogger(t)
	startWriter(t, cfg, group, log)
	require.Eventually(t, func() bool { return countDeliveries(t, db) == 3 }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, []schemas.Delivery{
		{EventID: "e1", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 12, AtMs: at, DeliveryID: "r1/e1"},
		{EventID: "e3", Destination: "ga4", Attempt: 1, Status: "in_doubt", Error: "no_outcome_recorded", AtMs: at, DeliveryID: "r2/e3"},
		{EventID: "e4", Destination: "ga4", Status: "blocked", Error: "withdrawn", AtMs: at, DeliveryID: "d4"},
	}, readDeliveries(t, db))
}
