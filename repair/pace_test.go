package repair

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// A rate budget hands events on in chunks of a tenth of a second's budget, never more than a
// batch; without one, a batch at a time.
func TestGateChunks(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		chunk int
	}{{0, 1000}, {1000, 100}, {5, 1}, {50000, 1000}} {
		g, closeGate, err := newGate(&config.Config{}, zap.NewNop(), withDefaults(Options{Rate: tc.rate}))
		require.NoError(t, err)
		closeGate()
		require.Equal(t, tc.chunk, g.chunk, "rate %v", tc.rate)
		require.Equal(t, tc.rate == 0, g.limiter == nil)
	}
}

// The gate holds the repair while live traffic lags more than yieldLag, and while the lag cannot
// be read; it lets it go once the lag is back under.
func TestGateWaitsForLiveTraffic(t *testing.T) {
	lags := []int64{50_000, -1, 20_001, 20_000}
	reads := 0
	g := &gate{chunk: 10, yieldLag: 20_000, every: time.Millisecond, log: zap.NewNop(),
		lagOf: func(context.Context) (int64, error) {
			l := lags[min(reads, len(lags)-1)]
			reads++
			if l < 0 {
				return 0, context.DeadlineExceeded
			}
			return l, nil
		}}
	require.NoError(t, g.wait(context.Background(), 10))
	require.Equal(t, 4, reads, "it waited through three readings over the limit or unread")
	require.Positive(t, g.paused)

	// Read at most once an interval: a chunk right after passes without asking Kafka.
	g.every = time.Hour
	require.NoError(t, g.wait(context.Background(), 10))
	require.Equal(t, 4, reads)

	// A repair stopped while it waits ends with the context.
	g.every, lags, reads = time.Millisecond, []int64{50_000}, 0
	g.checked = time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, g.wait(ctx, 10), context.Canceled)
}
