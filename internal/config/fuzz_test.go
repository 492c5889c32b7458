package config

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML and one arbitrary environment override to the config parser. It
// must never panic, errors must name the file, and an accepted config must be complete (defaults
// filled, write keys present).
func FuzzParse(f *testing.F) {
	f.Add([]byte("ingest:\n  write_keys: [k]\n"), "TOLLGATE_KAFKA_PARTITIONS", "12")
	f.Add([]byte("kafka:\n  brokers: [a:1]\n  topic_prefix: x.\ningest:\n  write_keys: [k]\n  jurisdictions: {DE: EU}\n"), "TOLLGATE_INGEST_WRITE_KEYS", "a,b")
	f.Add([]byte("ingest: {write_keys: [k]}\ndelivery: {max_attempts: -1}\n"), "TOLLGATE_DELIVERY_TIMEOUT", "1x")
	f.Add([]byte("clickhouse: [1]\n"), "TOLLGATE_INGEST_JURISDICTIONS", "x")
	f.Fuzz(func(t *testing.T, data []byte, key, val string) {
		env := func(k string) (string, bool) {
			if k == key {
				return val, true
			}
			return "", false
		}
		c, err := Parse("c.yaml", data, env)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "c.yaml") {
				t.Fatalf("error does not name the file: %q", err)
			}
			return
		}
		if len(c.Ingest.WriteKeys) == 0 || len(c.Kafka.Brokers) == 0 || c.Kafka.TopicPrefix == "" || c.Delivery.MaxAttempts < 1 {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}
