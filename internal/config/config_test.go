package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\n"), envOf(nil))
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:9092"}, c.Kafka.Brokers)
	require.Equal(t, "tg.", c.Kafka.TopicPrefix)
	require.Equal(t, "tollgate", c.ClickHouse.Database)
	require.Equal(t, "127.0.0.1:8080", c.Ingest.Listen)
	require.Equal(t, "policy.yaml", c.PolicyFile)
	require.Equal(t, "EU", c.Ingest.Jurisdictions["DE"])
	require.Equal(t, "tg.events.raw", c.Topic(TopicRaw))
}

func TestEnvironmentOverridesEveryScalar(t *testing.T) {
	c, err := Parse("c.yaml", []byte("kafka:\n  topic_prefix: file.\ningest:\n  write_keys: [k]\n"), envOf(map[string]string{
		"TOLLGATE_KAFKA_BROKERS":            "a:9092, b:9092",
		"TOLLGATE_KAFKA_TOPIC_PREFIX":       "env.",
		"TOLLGATE_INGEST_LISTEN":            ":8080",
		"TOLLGATE_KAFKA_PARTITIONS":         "12",
		"TOLLGATE_DELIVERY_INITIAL_BACKOFF": "1s",
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"a:9092", "b:9092"}, c.Kafka.Brokers)
	require.Equal(t, "env.", c.Kafka.TopicPrefix)
	require.Equal(t, ":8080", c.Ingest.Listen)
	require.Equal(t, 12, c.Kafka.Partitions)
	require.Equal(t, time.Second, c.Delivery.InitialBackoff)
}

func TestErrorsNameFileFieldAndLine(t *testing.T) {
	for _, tc := range []struct{ yaml, env, want string }{
		{"ingest:\n  write_keys: []\n", "", "c.yaml:2: ingest.write_keys: at least one write key is required"},
		{"kafka:\n  brokers: [nohost]\ningest:\n  write_keys: [k]\n", "", `c.yaml:2: kafka.brokers[0]: "nohost" is not host:port`},
		{"ingest:\n  write_keys: [k]\n  bogus: 1\n", "", "c.yaml: line 3: field bogus not found"},
		{"kafka:\n  replication_factor: -1\ningest:\n  write_keys: [k]\n", "", "c.yaml:2: kafka.replication_factor: -1: must be between 1 and 32767"},
		{"kafka:\n  replication_factor: 2\n  min_insync_replicas: 3\ningest:\n  write_keys: [k]\n", "", "c.yaml:3: kafka.min_insync_replicas: 3: must be at least 1 and at most kafka.replication_factor (2)"},
		{"kafka:\n  compression: gzip\ningest:\n  write_keys: [k]\n", "", `c.yaml:2: kafka.compression: "gzip": must be one of none, snappy, lz4, zstd`},
		{"ingest:\n  write_keys: [k]\n", "TOLLGATE_KAFKA_PARTITIONS=many", "TOLLGATE_KAFKA_PARTITIONS: \"many\" is not a whole number"},
	} {
		env := map[string]string{}
		if k, v, ok := cut(tc.env); ok {
			env[k] = v
		}
		_, err := Parse("c.yaml", []byte(tc.yaml), envOf(env))
		require.ErrorContains(t, err, tc.want)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
