package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchSizes records the records per batch a client wrote to the broker.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, m.NumRecords)
}

func gatheringClient(t *testing.T, linger time.Duration, hooks ...kgo.Hook) *kgo.Client {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, rawTopic))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(rawTopic),
		kgo.ProducerLinger(linger), kgo.WithHooks(hooks...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// Concurrent requests' records share a produce batch: kgo's own ProduceSync would have sent
// each call's record at once, in a batch of its own. The linger is long enough that the three
// calls are made inside it however the goroutines are scheduled.
func TestGatheringSharesBatches(t *testing.T) {
	sizes := &batchSizes{}
	p := Gathering(gatheringClient(t, 2*time.Second, sizes))
	var wg sync.WaitGroup
	results := make([]kgo.ProduceResults, 3)
	for i := range results {
		wg.Go(func() { results[i] = p.ProduceSync(context.Background(), &kgo.Record{Value: []byte{byte(i)}}) })
	}
	wg.Wait()
	for i, res := range results {
		require.NoError(t, res.FirstErr(), "call %d", i)
		require.Len(t, res, 1)
		require.GreaterOrEqual(t, res[0].Record.Offset, int64(0))
	}
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	require.Equal(t, []int{3}, sizes.sizes, "one batch of the three calls' records")
}

// Each record gets its own result, in the order given, and a done context fails the records
// not yet sent, as kgo's ProduceSync does (the request then answers 503).
func TestGatheringResults(t *testing.T) {
	p := Gathering(gatheringClient(t, time.Millisecond))
	recs := []*kgo.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
	res := p.ProduceSync(context.Background(), recs...)
	require.NoError(t, res.FirstErr())
	for i, r := range res {
		require.Same(t, recs[i], r.Record)
		require.Equal(t, int64(i), r.Record.Offset)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = p.ProduceSync(ctx, &kgo.Record{Value: []byte("d")})
	require.ErrorIs(t, res.FirstErr(), context.Canceled)
}
