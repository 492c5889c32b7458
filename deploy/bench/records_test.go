package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Per event and per topic, and the estimate with every destination forwarding: the per-event
// topics as counted plus, per destination, what one forwarded event costs. The counts are those
// of issue 24's ~14 records per event (raw, a decision per destination, a remembered id, and per
// forwarded event its filtered record, ledger entry and delivery row) with a third forwarded.
func TestKafkaPerEvent(t *testing.T) {
	counts := map[string]int64{"events.raw": 1000, "audit.decisions": 3000, "dedup.ids": 1000, "consent.state": 0,
		"dest.ga4": 300, "dest.meta": 300, "dest.ops": 400, "dest.ga4.ledger": 300, "dest.meta.ledger": 300,
		"dest.ops.ledger": 400, "dest.ga4.retry": 0, "audit.deliveries": 1000}
	got := kafkaPerEvent(counts)
	require.Equal(t, int64(1000), got["events"])
	require.Equal(t, 3, got["destinations"])
	require.Equal(t, 8.0, got["total"])
	require.InDelta(t, 1.0/3, got["forwarded_share"], 0.001)
	require.Equal(t, 3.0, got["per_topic"].(map[string]any)["audit.decisions"])
	require.Equal(t, 0.4, got["per_topic"].(map[string]any)["dest.ops"])
	require.Equal(t, 5.0+3*3, got["all_forwarding"], "raw, 3 decisions, 1 id; then 3 × (filtered, ledger, delivery)")

	counts["audit.decisions"] = 1000 // one decision set per event: the target's shape with one record per forward
	counts["dedup.ids"], counts["audit.deliveries"] = 0, 0
	for _, d := range []string{"ga4", "meta", "ops"} {
		counts["dest."+d+".ledger"] = 0
	}
	require.Equal(t, 5.0, kafkaPerEvent(counts)["all_forwarding"])

	require.NotContains(t, kafkaPerEvent(map[string]int64{"events.raw": 5}), "all_forwarding", "nothing forwarded: no estimate")
}

// A tiny run on the real broker: records are end − start offsets per topic, the commit marker
// of a transaction's partition included, and nothing of another prefix.
func TestTopicRecordsCountsOffsets(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(testenv.Kafka(t), ",")...), kgo.DefaultProduceTopic("unused"),
		kgo.TransactionalID("bench-records-"+randomHex(t)), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.UnknownTopicRetries(-1)) // until the context ends: a busy broker may take a moment to serve a new topic
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := "benchtest" + randomHex(t) + "."
	topics := []string{prefix + "events.raw", prefix + "audit.decisions", prefix + "dest.ga4"}
	resp, err := adm.CreateTopics(ctx, 2, 1, nil, topics...)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topics...) })

	rec := func(topic string, partition int32) *kgo.Record {
		return &kgo.Record{Topic: prefix + topic, Partition: partition, Value: []byte("v")}
	}
	require.NoError(t, cl.BeginTransaction())
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, rec("events.raw", int32(i%2)), rec("audit.decisions", 0))
	}
	recs = append(recs, rec("dest.ga4", 1), rec("dest.ga4", 1))
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	require.NoError(t, cl.EndTransaction(ctx, kgo.TryCommit))

	got, err := settledCounts(ctx, adm, prefix)
	require.NoError(t, err)
	// A marker per partition the transaction wrote: two on raw, one on each other topic.
	require.Equal(t, map[string]int64{"events.raw": 12, "audit.decisions": 11, "dest.ga4": 3}, got)
}

// tableRows reads the rows of each table of the run's database, and only of it.
func TestTableRows(t *testing.T) {
	testenv.ClickHouse(t)
	ch := chClient{base: "http://" + testenv.ClickHouseHTTP(), http: &http.Client{Timeout: 30 * time.Second}}
	ctx := context.Background()
	db := "tollgate_benchtest_" + randomHex(t)
	for _, q := range []string{"CREATE DATABASE " + db, "CREATE TABLE " + db + ".a (x UInt8) ENGINE = MergeTree ORDER BY x",
		"CREATE TABLE " + db + ".b (x UInt8) ENGINE = MergeTree ORDER BY x", "INSERT INTO " + db + ".a VALUES (1), (2), (3)",
		"INSERT INTO " + db + ".a VALUES (4)", "INSERT INTO " + db + ".b VALUES (1)"} {
		_, err := ch.query(ctx, q)
		require.NoError(t, err, q)
	}
	t.Cleanup(func() { _, _ = ch.query(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	rows, err := tableRows(ctx, ch, db)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"a": 4, "b": 1}, rows)
	require.Equal(t, map[string]any{"a": 2.0, "b": 0.5}, rowsPerEvent(rows, 2)["per_table"])
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
