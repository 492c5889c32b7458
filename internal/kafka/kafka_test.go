package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Several clients in one process each register their franz-go metrics (kprom) under a client id
// of their own; a second client must not panic on a duplicate registration, and a closed
// client's series go away.
func TestClientsRegisterTheirOwnKafkaMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka (make test-unit runs without services)")
	}
	addr := testenv.Kafka(t) // TOLLGATE_TEST_KAFKA, or a container
	cfg := &config.Config{Kafka: config.Kafka{Brokers: []string{addr}}}
	a, err := NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	b, err := NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, a.Ping(context.Background()))
	require.NoError(t, b.Ping(context.Background()))
	clients := func() map[string]bool {
		ids := map[string]bool{}
		mfs, err := prometheus.DefaultGatherer.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "tollgate_kafka_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "client_id" {
						ids[l.GetValue()] = true
					}
				}
			}
		}
		return ids
	}
	require.Len(t, clients(), 2)
	b.Close()
	require.Len(t, clients(), 1)
	a.Close()
}
