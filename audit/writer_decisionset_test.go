package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

// eventDecisions are the decisions of event i for three destinations, as the engine makes them:
// the event's fields shared, each destination's own outcome, reason, fields and source.
func eventDecisions(i int) []schemas.Decision {
	var ds []schemas.Decision
	for j, dest := range []string{"ga4", "meta", "ops"} {
		d := testDecision(i)
		d.DecisionID = fmt.Sprintf("dec-%05d-%s", i, dest)
		d.Destination, d.Purpose = dest, []string{"analytics", "marketing", "necessary"}[j]
		d.ConsentProof = fmt.Sprintf("proof-%d", i%4)
		d.RunID = []string{"", "run-1"}[i%2]
		if (i+j)%3 == 1 {
			d.Outcome, d.Reason, d.FieldsSent = "blocked", "no_consent", []string{}
			d.FieldsStripped = []string{"context.page_url", "properties.email"}
		}
		d.ConsentSource = []string{"", "tcf", "event,gcm"}[(i+j)%3]
		ds = append(ds, d)
	}
	return ds
}

func decisionSetRecord(t testing.TB, cfg *config.Config, partition int32, ds []schemas.Decision) *kgo.Record {
	t.Helper()
	var s schemas.DecisionSet
	for i := range ds {
		require.NoError(t, s.Add(&ds[i]))
	}
	b, err := schemas.DecisionSets.Encode(&s)
	require.NoError(t, err)
	return &kgo.Record{Topic: cfg.Topic(config.TopicDecisions), Partition: partition, Key: []byte(s.UserKey), Value: b}
}

// A decision set (one record per event) gives the same rows, every column, as the
// per-destination records the processor wrote before; per-destination records still insert,
// mixed with sets on one topic; the same sets inserted again (a resend, a replay of the topic)
// change nothing under FINAL.
func TestWriterDecisionSetsMatchPerDestinationRecords(t *testing.T) {
	t.Parallel()
	const events, old = 60, 10 // the last `old` events go as per-destination records to both
	var want []schemas.Decision
	perDest := func(cfg *config.Config) []*kgo.Record {
		var recs []*kgo.Record
		for i := range events {
			for _, d := range eventDecisions(i) {
				recs = append(recs, decisionRecord(t, cfg, int32(i%3), d))
			}
		}
		return recs
	}
	sets := func(cfg *config.Config) []*kgo.Record {
		var recs []*kgo.Record
		for i := range events {
			if i >= events-old {
				for _, d := range eventDecisions(i) {
					recs = append(recs, decisionRecord(t, cfg, int32(i%3), d))
				}
				continue
			}
			recs = append(recs, decisionSetRecord(t, cfg, int32(i%3), eventDecisions(i)))
		}
		return recs
	}
	for i := range events {
		want = append(want, eventDecisions(i)...)
	}

	run := func(records func(*config.Config) []*kgo.Record, again bool) map[string]schemas.Decision {
		cfg := testConfig(t)
		createTopics(t, cfg)
		db := openDB(t, cfg)
		group := testGroup(t, cfg)
		p := producer(t, cfg)
		produce(t, p, records(cfg)...)
		log, _ := testLogger(t)
		w := startWriter(t, cfg, group, log)
		end := endOffsets(t, cfg)
		require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
		if again {
			produce(t, p, records(cfg)...)
			end = endOffsets(t, cfg)
			require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
		}
		require.NoError(t, w.stop())
		rows := readDecisions(t, db, "decisions") // fails on a row twice under FINAL
		require.Equal(t, rows, readDecisions(t, db, "decisions_by_user"))
		return rows
	}
	fromPerDest := run(perDest, false)
	fromSets := run(sets, true)
	require.Len(t, fromSets, len(want))
	require.Equal(t, fromPerDest, fromSets)
	for _, d := range want {
		require.Equal(t, truncated(d), fromSets[d.DecisionID], d.DecisionID)
	}
}

// A row of a decision set that ClickHouse refuses for good parks the set's record, unchanged
// (once per parking, not once per row); the set's other rows and the rest of the batch insert.
func TestWriterParksTheSetOfARefusedRow(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	createTopics(t, cfg)
	db := openDB(t, cfg)
	ctx := context.Background()
	poison := eventDecisions(4)
	require.NoError(t, db.Exec(ctx, "ALTER TABLE "+db.table("decisions")+
		" ADD COLUMN refuse UInt8 MATERIALIZED throwIf(event_id = '"+poison[0].EventID+"' AND destination != 'ga4')"))
	group := testGroup(t, cfg)
	p := producer(t, cfg)
	var recs []*kgo.Record
	for i := range 8 {
		recs = append(recs, decisionSetRecord(t, cfg, int32(i%cfg.Kafka.Partitions), eventDecisions(i)))
	}
	produce(t, p, recs...)
	poisonRec := recs[4]

	log, _ := testLogger(t)
	w := startWriter(t, cfg, group, log)
	end := endOffsets(t, cfg)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())

	rows := readDecisions(t, db, "decisions")
	require.Len(t, rows, 8*3-2)
	require.Contains(t, rows, poison[0].DecisionID, "the set's good row is inserted")
	require.NotContains(t, rows, poison[1].DecisionID)
	require.NotContains(t, rows, poison[2].DecisionID)

	parked := parkedRecords(t, cfg)
	// The two refused rows are adjacent: one parking, one record (two only if they were
	// isolated in separate halves, never three).
	require.LessOrEqual(t, len(parked), 2)
	for _, r := range parked {
		require.Equal(t, poisonRec.Value, r.Value)
		ds, err := schemas.DecodeDecisions(nil, r.Value)
		require.NoError(t, err)
		require.Len(t, ds, 3)
	}
}
