package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/sample"
)

// TestPoisonRawRecordIsDeadLetteredAndDoesNotStall writes records no tollgate schema wrote into
// the raw topic ahead of real events: they must land on the raw dead-letter topic with the error
// in a header, and the events behind them must still be decided.
func TestPoisonRawRecordIsDeadLetteredAndDoesNotStall(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	ctx := context.Background()
	cl, err := kafka.NewClient(p.cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	events := sample.Events(uint64(time.Now().UnixNano()), 20, 5, time.Now())
	var poison []*kgo.Record
	for _, e := range events[:5] { // same keys as real users: same partitions, ahead of their events
		poison = append(poison, &kgo.Record{Topic: p.cfg.Topic(config.TopicRaw), Key: []byte(e.UserKey()), Value: []byte("{not avro")})
	}
	require.NoError(t, cl.ProduceSync(ctx, poison...).FirstErr())
	n, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	require.Equal(t, len(events), n)

	db := p.openDB()
	require.Eventually(t, func() bool {
		var c uint64
		return db.QueryRow(ctx, "SELECT count() FROM "+p.db+".decisions FINAL").Scan(&c) == nil && c == uint64(3*len(events))
	}, 60*time.Second, 200*time.Millisecond, "events behind poison records were not decided; logs:\n%s", p.logs)

	dlq := p.cfg.Topic(config.TopicRawDLQ)
	ends, err := kafka.EndOffsets(ctx, cl, dlq)
	require.NoError(t, err)
	var got []*kgo.Record
	require.NoError(t, kafka.ReadToEnd(ctx, p.cfg, zap.NewNop(), dlq, ends, func(r *kgo.Record) { got = append(got, r) }))
	require.Len(t, got, len(poison))
	for _, r := range got {
		require.Equal(t, "{not avro", string(r.Value))
		require.Equal(t, p.cfg.Topic(config.TopicRaw), kafka.Header(r, "tg-original-topic"))
		require.NotEmpty(t, kafka.Header(r, "tg-error"))
	}
}
