package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ClickHouse itself is stopped for 30 s mid-stream and started again (a private server: the
// shared one is never stopped). Records keep arriving meanwhile. The writer keeps its batch,
// commits nothing it has not inserted, and once the server is back every decision and delivery
// is there, once under FINAL.
func TestWriterSurvivesClickHouseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test stops a ClickHouse server for 30 s")
	}
	t.Parallel()
	cfg := testConfig(t)
	createTopics(t, cfg)
	srv := startPrivateServer(t)
	cfg.ClickHouse.Addr = srv.addr
	ctx := context.Background()
	db, err := Open(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx)) // before the writer does: the test reads the tables at once
	group := testGroup(t, cfg)
	p := producer(t, cfg)
	log, logs := testLogger(t)
	w := startWriter(t, cfg, group, log)

	next := 0
	send := func(n int) {
		var recs []*kgo.Record
		for range n {
			recs = append(recs, decisionRecord(t, cfg, int32(next%3), testDecision(next)),
				deliveryRecord(t, cfg, int32(next%3), testDelivery(next)))
			next++
		}
		produce(t, p, recs...)
	}
	send(500)
	require.Eventually(t, func() bool { return count(t, db, "") == 500 && countDeliveries(t, db) == 500 }, waitFor, 50*time.Millisecond)
	db.Close()

	srv.stop()
	down := time.Now()
	send(100) // arrives while the server is down, before the writer notices
	require.Eventually(t, func() bool {
		return logs.FilterMessage("clickhouse insert failed; keeping the batch and retrying until it succeeds").Len() > 0
	}, waitFor, 50*time.Millisecond)
	atFailure := committed(t, cfg, group)
	// Keep traffic coming for the rest of the outage (30 s in all).
	for time.Since(down) < 30*time.Second {
		send(50)
		time.Sleep(time.Second) // traffic pacing over the outage, not synchronisation
	}
	require.Equal(t, atFailure, committed(t, cfg, group), "nothing committed while ClickHouse is down")
	require.Less(t, atFailure, endOffsets(t, cfg))

	srv.start()
	send(500)
	db, err = Open(ctx, cfg)
	require.NoError(t, err)
	defer db.Close()
	total := next
	require.Eventually(t, func() bool {
		return count(t, db, "") == uint64(total) && countDeliveries(t, db) == uint64(total)
	}, 2*waitFor, 100*time.Millisecond)
	end := endOffsets(t, cfg)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())

	got := readDecisions(t, db, "decisions") // fails on a duplicate
	require.Len(t, got, total)
	for i := range total {
		d := testDecision(i)
		require.Equal(t, truncated(d), got[d.DecisionID], fmt.Sprint(i))
	}
	var keys uint64
	require.NoError(t, db.QueryRow(ctx, "SELECT uniqExact(destination, event_id, attempt, status) FROM "+db.table("deliveries")+" FINAL").Scan(&keys))
	require.Equal(t, uint64(total), keys)
	require.Len(t, readDeliveries(t, db), total)
}
