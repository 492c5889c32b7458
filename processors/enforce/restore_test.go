package enforce

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// TestRestoreFailureStopsTheProcessor: a partition-assignment callback that cannot restore the
// consent state leaves the error for Run (which returns it before deciding any record) instead of
// killing the process from inside franz-go's callback (it used log.Fatal).
func TestRestoreFailureStopsTheProcessor(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\n"), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	p := New(cfg, zap.NewNop())
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // nothing listens: every request fails
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a cancelled restore must not wait out the changelog listing's retries (settle.go)
	p.onAssigned(ctx, cl, map[string][]int32{cfg.Topic(config.TopicRaw): {0}})
	stopped := p.stopErr.Load()
	require.NotNil(t, stopped, "the failure must reach Run")
	require.ErrorContains(t, *stopped, "restore consent state")
	p.stop(context.DeadlineExceeded)
	require.ErrorContains(t, *p.stopErr.Load(), "restore consent state", "the first error is kept")
}
