package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecurityKeys(t *testing.T) {
	_, err := Parse("c.yaml", []byte("kafka:\n  sasl: {mechanism: PLAIN, username: tg, password_env: KPASS_UNSET}\ningest:\n  write_keys: [k]\n"), envOf(nil))
	require.ErrorContains(t, err, "kafka.sasl.password_env: environment variable KPASS_UNSET is not set")

	t.Setenv("KPASS", "x") // validation reads the real environment for password_env
	c, err := Parse("c.yaml", []byte("kafka:\n  sasl: {mechanism: SCRAM-SHA-512, username: tg, password_env: KPASS}\n  tls: {enabled: true}\n"+
		"clickhouse:\n  tls: {enabled: true, server_name: ch.internal}\ningest:\n  write_keys: [k]\n  rate_limit: 100\n"+
		"delivery:\n  allowed_hosts: [hooks.example.com, \"*.example.org\"]\ndebug:\n  pprof_listen: 127.0.0.1:6060\n"), envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 500, c.Ingest.RateBurst, "default burst fits a full batch")
	tc, err := c.ClickHouse.TLS.Config()
	require.NoError(t, err)
	require.Equal(t, "ch.internal", tc.ServerName)
	require.Equal(t, "x", c.Kafka.SASL.Password())

	require.Equal(t, []string{"hooks.example.com", "*.example.org"}, c.Delivery.AllowedHosts, "matched by sdk.HostAllowed")
}

func TestSecurityKeyErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(bad, []byte("not pem"), 0o600))
	for _, tc := range []struct{ yaml, want string }{
		{"kafka:\n  sasl: {mechanism: GSSAPI, username: u, password_env: HOME}\n", `c.yaml:2: kafka.sasl.mechanism: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{"kafka:\n  sasl: {mechanism: PLAIN, password_env: HOME}\n", "kafka.sasl.username: is required with a SASL mechanism"},
		{"kafka:\n  tls: {ca_file: /x}\n", "kafka.tls: enabled: must be true"},
		{"kafka:\n  tls: {enabled: true, ca_file: " + bad + "}\n", "holds no PEM certificate"},
		{"clickhouse:\n  tls: {enabled: true, cert_file: /x}\n", "clickhouse.tls: cert_file and key_file: set both or neither"},
		{"ingest:\n  rate_limit: -1\n", "ingest.rate_limit: must not be negative"},
		{"ingest:\n  linger: 2s\n", "ingest.linger: 2s: must be at most 1s"},
		{"delivery:\n  allowed_hosts: [\"http://x\"]\n", `delivery.allowed_hosts[0]: "http://x" is not a host name`},
		{"debug:\n  pprof_listen: 0.0.0.0:6060\n", "debug.pprof_listen: \"0.0.0.0:6060\" must be a loopback address"},
	} {
		y := tc.yaml
		if !containsIngest(y) {
			y += "ingest:\n  write_keys: [k]\n"
		} else {
			y += "  write_keys: [k]\n"
		}
		_, err := Parse("c.yaml", []byte(y), envOf(nil))
		require.ErrorContains(t, err, tc.want, y)
	}
}

func containsIngest(y string) bool { return len(y) >= 7 && y[:7] == "ingest:" }
