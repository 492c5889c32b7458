package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// TLS configures an encrypted connection to Kafka or ClickHouse. The zero value is plaintext.
type TLS struct {
	// Enabled turns TLS on. Default false. With only Enabled set, the server is verified against
	// the system's root CAs.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate, instead of the
	// system roots. Default: none.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for mutual TLS. Both or neither.
	// Default: none (no client certificate).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the host name the server's certificate is checked against. Default:
	// the host of the address dialled.
	ServerName string `yaml:"server_name"`
}

// Config returns the crypto/tls configuration, or nil when TLS is off. It reads the files, so a
// missing or bad file fails config loading, not the first connection. Certificates are always
// verified: there is deliberately no "insecure" switch.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return nil, fmt.Errorf("enabled: must be true when ca_file, cert_file, key_file or server_name is set")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("cert_file and key_file: set both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// SASL mechanisms tollgate speaks to Kafka.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL authenticates tollgate to Kafka. The zero value is no authentication.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Default "": none. PLAIN sends the
	// password as it is: use it only with kafka.tls.enabled.
	Mechanism string `yaml:"mechanism"`
	// Username to authenticate as; required with a mechanism.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the password; required with a mechanism.
	PasswordEnv string `yaml:"password_env"`
}

// Password returns the password from the environment.
func (s SASL) Password() string { return os.Getenv(s.PasswordEnv) }

func (s SASL) validate() error {
	switch strings.ToUpper(s.Mechanism) {
	case "":
		if s.Username != "" || s.PasswordEnv != "" {
			return &policy.FieldError{Field: "kafka.sasl.mechanism", Reason: "is required when username or password_env is set"}
		}
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return &policy.FieldError{Field: "kafka.sasl.mechanism", Reason: fmt.Sprintf("%q is not one of %s, %s, %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)}
	}
	if s.Username == "" {
		return &policy.FieldError{Field: "kafka.sasl.username", Reason: "is required with a SASL mechanism"}
	}
	if s.PasswordEnv == "" {
		return &policy.FieldError{Field: "kafka.sasl.password_env", Reason: "is required with a SASL mechanism"}
	}
	if _, ok := os.LookupEnv(s.PasswordEnv); !ok {
		return &policy.FieldError{Field: "kafka.sasl.password_env", Reason: fmt.Sprintf("environment variable %s is not set", s.PasswordEnv)}
	}
	return nil
}

// validateSecurity checks the TLS, SASL, rate-limit, allowlist and debug keys.
func (c *Config) validateSecurity() error {
	if _, err := c.Kafka.TLS.Config(); err != nil {
		return &policy.FieldError{Field: "kafka.tls", Reason: err.Error()}
	}
	if err := c.Kafka.SASL.validate(); err != nil {
		return err
	}
	if _, err := c.ClickHouse.TLS.Config(); err != nil {
		return &policy.FieldError{Field: "clickhouse.tls", Reason: err.Error()}
	}
	if c.Ingest.RateLimit < 0 {
		return &policy.FieldError{Field: "ingest.rate_limit", Reason: "must not be negative (0 means no limit)"}
	}
	if c.Ingest.RateBurst < 0 {
		return &policy.FieldError{Field: "ingest.rate_burst", Reason: "must not be negative"}
	}
	for i, h := range c.Delivery.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") || strings.Count(h, "*") > 1 || strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
			return &policy.FieldError{Field: fmt.Sprintf("delivery.allowed_hosts[%d]", i), Reason: fmt.Sprintf("%q is not a host name or *.domain", h)}
		}
	}
	if l := c.Debug.PprofListen; l != "" {
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			return &policy.FieldError{Field: "debug.pprof_listen", Reason: fmt.Sprintf("%q is not host:port", l)}
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			// pprof exposes heap contents (events in flight): never off the machine.
			return &policy.FieldError{Field: "debug.pprof_listen", Reason: fmt.Sprintf("%q must be a loopback address", l)}
		}
	}
	return nil
}

// setSecurityDefaults fills the defaults of the keys above.
func (c *Config) setSecurityDefaults() {
	if c.Ingest.RateLimit > 0 && c.Ingest.RateBurst == 0 {
		// One full batch must always fit, or a client sending full batches could never pass.
		c.Ingest.RateBurst = max(c.Ingest.RateLimit, 500)
	}
}

// Debug holds switches for diagnosing a running process.
type Debug struct {
	// PprofListen serves net/http/pprof (CPU, heap, goroutine profiles) on this loopback
	// address, e.g. "127.0.0.1:6060". Default "": off. Profiles show data in flight, so only a
	// loopback address is accepted.
	PprofListen string `yaml:"pprof_listen"`
}
