package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// BenchmarkWriterFromKafka measures the audit writer end to end: decisions already on the audit
// topic (made visible at once by committing the transaction that wrote them) until they are
// inserted into ClickHouse (with the by-user copy and the daily summary; the offsets are
// committed right after each insert). The
// writer has joined its group before the clock starts. Run with -benchtime=1x: each iteration
// moves 200,000 rows.
func BenchmarkWriterFromKafka(b *testing.B) {
	cfg := testConfig(b)
	cfg.ClickHouse.FlushInterval = time.Second
	cfg.ClickHouse.BatchSize = 20000
	createTopics(b, cfg)
	db := openDB(b, cfg)
	p := producer(b, cfg, kgo.TransactionalID("bench-audit-"+randomHex(4)), kgo.TransactionTimeout(time.Minute))
	const n = 200_000
	var elapsed time.Duration
	next := 0
	for range b.N {
		group := testGroup(b, cfg)
		w := startWriter(b, cfg, group, zap.NewNop())
		// Warm up: the writer has joined and written something once the group commits.
		require.NoError(b, p.BeginTransaction())
		produce(b, p, decisionRecord(b, cfg, 0, testDecision(next)))
		next++
		require.NoError(b, p.EndTransaction(context.Background(), kgo.TryCommit))
		require.Eventually(b, func() bool { return countRaw(b, db, "decisions") == uint64(next) }, waitFor, 20*time.Millisecond)

		require.NoError(b, p.BeginTransaction())
		var recs []*kgo.Record
		for range n {
			recs = append(recs, decisionRecord(b, cfg, int32(next%3), testDecision(next)))
			next++
			if len(recs) == 10000 {
				produce(b, p, recs...)
				recs = recs[:0]
			}
		}
		require.NoError(b, p.EndTransaction(context.Background(), kgo.TryCommit))
		start := time.Now()
		require.Eventually(b, func() bool { return countRaw(b, db, "decisions") == uint64(next) }, 5*time.Minute, 20*time.Millisecond)
		elapsed += time.Since(start)
		require.NoError(b, w.stop())
	}
	require.Equal(b, uint64(next), count(b, db, ""))
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "rows/s")
}
