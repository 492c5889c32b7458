package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// A broker that does not answer is worth waiting for; one that refuses is not.
func TestUnreachable(t *testing.T) {
	cfg := &config.Config{Policy: &policy.Policy{}}
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // nothing listens there
	cfg.Kafka.TopicPrefix = "unreachable."
	cl, err := NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = EnsureTopics(ctx, cfg, cl)
	require.Error(t, err)
	require.True(t, Unreachable(err), "%v", err)
	require.False(t, Unreachable(kerr.TopicAuthorizationFailed))
	require.False(t, Unreachable(context.Canceled))
}
