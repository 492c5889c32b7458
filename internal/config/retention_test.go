package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetentionDefaultsEnvAndValidation(t *testing.T) {
	c, err := Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\n"), envOf(nil))
	require.NoError(t, err)
	require.Equal(t, Retention{AnonymizeAfter: 90 * 24 * time.Hour, Interval: time.Hour}, c.ClickHouse.Retention)

	c, err = Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\nclickhouse:\n  retention:\n    anonymize_after: 720h\n"),
		envOf(map[string]string{"TOLLGATE_CLICKHOUSE_RETENTION_DROP_AFTER": "8760h"}))
	require.NoError(t, err)
	require.Equal(t, Retention{AnonymizeAfter: 720 * time.Hour, DropAfter: 8760 * time.Hour, Interval: time.Hour}, c.ClickHouse.Retention)

	_, err = Parse("c.yaml", []byte("ingest:\n  write_keys: [k]\nclickhouse:\n  retention:\n    drop_after: 24h\n"), envOf(nil))
	require.EqualError(t, err, "c.yaml:5: clickhouse.retention.drop_after: 24h0m0s: must be 0 (never) or longer than anonymize_after (2160h0m0s)")
}
