package kafka

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// On three brokers, every topic EnsureTopics creates has replication_factor replicas and
// min.insync.replicas = min_insync_replicas; a topic that existed before with less is named in a
// warning, and only that one.
func TestEnsureTopicsReplicatesAndWarnsAboutWeakTopics(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	cfg := &config.Config{
		Kafka:  config.Kafka{Brokers: cluster.ListenAddrs(), TopicPrefix: "rt.", Partitions: 2, ReplicationFactor: 3, MinInsyncReplicas: 2},
		Policy: &policy.Policy{Names: []string{"meta"}},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()

	// An old topic: one replica, the broker's default min.insync.replicas (1).
	old := cfg.Topic(config.TopicRaw)
	resp, err := adm.CreateTopic(ctx, 2, 1, nil, old)
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	require.NoError(t, EnsureTopics(ctx, cfg, cl))
	var names []string
	for topic := range Topics(cfg) {
		names = append(names, topic)
	}
	details, err := adm.ListTopics(ctx, names...)
	require.NoError(t, err)
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	require.NoError(t, err)
	minISR := map[string]string{}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" && c.Value != nil {
				minISR[rc.Name] = *c.Value
			}
		}
	}
	for _, topic := range names {
		want, wantISR := 3, "2"
		if topic == old {
			want, wantISR = 1, "1"
		}
		require.Contains(t, details, topic)
		for _, p := range details[topic].Partitions {
			require.Len(t, p.Replicas, want, "replicas of %s/%d", topic, p.Partition)
		}
		require.Equal(t, wantISR, minISR[topic], "min.insync.replicas of %s", topic)
	}

	core, logs := observer.New(zapcore.WarnLevel)
	WarnWeakTopics(ctx, cfg, cl, zap.New(core))
	var warned []string
	for _, e := range logs.All() {
		require.Equal(t, "topic less durable than configured", e.Message)
		warned = append(warned, e.ContextMap()["topic"].(string)+": "+e.ContextMap()["problem"].(string))
	}
	require.ElementsMatch(t, []string{
		old + ": 1 replicas, kafka.replication_factor is 3",
		old + ": min.insync.replicas=1, kafka.min_insync_replicas is 2",
	}, warned)
}

// With the config's own defaults on one broker nothing is weak: replication 1, min.insync 1.
func TestWeakTopicsSingleBrokerDefaults(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	cfg, err := config.Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\nkafka:\n  brokers: ["+cluster.ListenAddrs()[0]+"]\n"),
		func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Policy = &policy.Policy{}
	require.Equal(t, []int{1, 1}, []int{cfg.Kafka.ReplicationFactor, cfg.Kafka.MinInsyncReplicas})
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, EnsureTopics(context.Background(), cfg, cl))
	weak, err := WeakTopics(context.Background(), cfg, cl)
	require.NoError(t, err)
	require.Empty(t, weak)
}
