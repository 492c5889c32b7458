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
// without a fuss. Both journal versions are read: one request a record (version 1), and the
// intents and outcomes of a moment together (version 2).
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
		return &kgo.Record{Topic: journal, Partition: 1, Key: []byte(j.Writer), Value: b}
	}
	recV1 := func(j schemas.JournalRecordV1) *kgo.Record {
		b, err := schemas.JournalV1.Encode(&j)
		require.NoError(t, err)
		return &kgo.Record{Topic: journal, Partition: 0, Key: []byte(j.RequestID), Value: b}
	}
	old, err := schemas.LedgerEntries.Encode(&schemas.LedgerEntry{EventID: "old"})
	require.NoError(t, err)
	produce(t, cl,
		&kgo.Record{Topic: journal, Partition: 0, Key: []byte("old"), Value: old},
		// Version 1: one intent or outcome a record.
		recV1(schemas.JournalRecordV1{Kind: schemas.JournalIntent, RequestID: "r1", Destination: "ga4", Events: []schemas.JournalEvent{{EventID: "e1", Attempt: 1}}}),
		recV1(schemas.JournalRecordV1{Kind: schemas.JournalOutcome, RequestID: "r1", Destination: "ga4", AtMs: at, HTTPStatus: 204, LatencyMs: 12,
			Events: []schemas.JournalEvent{{EventID: "e1", Attempt: 1, Status: "delivered"}, {EventID: "e2", Attempt: 2, Status: schemas.JournalStatusUnsent}}}),
		// Version 2: the requests of a moment, intents and outcomes side by side.
		rec(schemas.JournalRecord{Destination: "ga4", Writer: "w", AtMs: at + 5, Requests: []schemas.JournalRequest{
			{Kind: schemas.JournalIntent, RequestID: "r3", Partition: 2, Events: []schemas.JournalEvent{{EventID: "e5", Attempt: 1}}},
			{Kind: schemas.JournalOutcome, RequestID: "r2", Partition: 0, AtMs: at, Events: []schemas.JournalEvent{{EventID: "e3", Attempt: 1, Status: "in_doubt", Error: "no_outcome_recorded"}}},
			{Kind: schemas.JournalOutcome, RequestID: "r4", Partition: 1, AtMs: at, HTTPStatus: 200, LatencyMs: 3, Events: []schemas.JournalEvent{{EventID: "e6", Attempt: 1, Status: "delivered"}}},
		}}),
		deliveryRecord(t, cfg, 2, schemas.Delivery{EventID: "e4", Destination: "ga4", Status: "blocked", Error: "withdrawn", AtMs: at, DeliveryID: "d4"}),
	)
	log, _ := testLogger(t)
	startWriter(t, cfg, group, log)
	require.Eventually(t, func() bool { return countDeliveries(t, db) == 4 }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, []schemas.Delivery{
		{EventID: "e1", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 12, AtMs: at, DeliveryID: "r1/e1"},
		{EventID: "e3", Destination: "ga4", Attempt: 1, Status: "in_doubt", Error: "no_outcome_recorded", AtMs: at, DeliveryID: "r2/e3"},
		{EventID: "e4", Destination: "ga4", Status: "blocked", Error: "withdrawn", AtMs: at, DeliveryID: "d4"},
		{EventID: "e6", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 200, LatencyMs: 3, AtMs: at, DeliveryID: "r4/e6"},
	}, readDeliveries(t, db))
}
