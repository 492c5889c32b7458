// Package config loads the tollgate config file (docs/configuration.md), applies TOLLGATE_* environment
// overrides, fills defaults and validates it, then loads the policy file it names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Config is the whole tollgate configuration.
type Config struct {
	Kafka      Kafka      `yaml:"kafka"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	Ingest     Ingest     `yaml:"ingest"`
	Delivery   Delivery   `yaml:"delivery"`
	Metrics    Metrics    `yaml:"metrics"`
	Processor  Processor  `yaml:"processor"`
	Dedup      Dedup      `yaml:"dedup"`
	// PolicyFile is the policy's path, relative to the config file's folder. Default "policy.yaml".
	PolicyFile string `yaml:"policy_file"`
	// Debug switches (security.go).
	Debug Debug `yaml:"debug"`

	// File is the path the config was read from; Policy the loaded policy file.
	File   string         `yaml:"-"`
	Policy *policy.Policy `yaml:"-"`
}

// Kafka says where the broker is and how topics are named.
type Kafka struct {
	// Brokers to bootstrap from. Default ["127.0.0.1:9092"].
	Brokers []string `yaml:"brokers"`
	// TopicPrefix starts every topic tollgate creates or reads. Default "tg.".
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions of each topic tollgate creates. Default 6. Existing topics are left as they are.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of created topics. Default 3 when three or more brokers are configured,
	// else 1 (a single local broker). Existing topics with fewer replicas are logged as a warning.
	ReplicationFactor int `yaml:"replication_factor"`
	// MinInsyncReplicas is the min.insync.replicas config of created topics: with acks=all (what
	// tollgate's producers use) a write succeeds only once this many replicas hold it. Default 2
	// when three or more brokers are configured and replication_factor is at least 2, else 1.
	// Existing topics with a lower value are logged as a warning.
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// Compression of the batches tollgate's producers write: none, snappy, lz4 or zstd. Default
	// none: compression costs CPU at the producer, at every consumer and at the broker (which
	// decompresses batches to validate them); without it the processor and the sinks used about
	// a fifth less CPU per event in make bench. Choose one when disk or network is the constraint.
	Compression string `yaml:"compression"`
	// TLS and SASL secure the connection to the brokers (security.go). Default: plaintext, no auth.
	TLS  TLS  `yaml:"tls"`
	SASL SASL `yaml:"sasl"`
}

// ClickHouse says where the audit tables live.
type ClickHouse struct {
	// Addr of the native protocol. Default "127.0.0.1:9000". Several replicas of one shard are
	// given comma-separated ("h1:9000,h2:9000"): connections go to the first that answers, and
	// move on to the next when it goes away (Addrs).
	Addr string `yaml:"addr"`
	// Cluster is the name of a cluster in the servers' remote_servers. Default: empty = single
	// server. With a name, migrations create the database and every table ON CLUSTER with
	// Replicated* engines (docs/audit.md "Replicated ClickHouse").
	Cluster string `yaml:"cluster"`
	// Database holding the audit tables; created with its tables if missing. Default "tollgate".
	Database string `yaml:"database"`
	// Username and PasswordEnv (the name of the variable holding the password). Default user "default", no password.
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
	// TLS secures the native protocol connection (security.go). Default: plaintext.
	TLS TLS `yaml:"tls"`
	// FlushInterval bounds how long audit records wait before an insert. Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// BatchSize is the most rows one insert carries. Default 50000: while a backlog drains,
	// inserts of 10,000 rows made ClickHouse merge each row about five times over (its CPU per
	// event fell by a third with 50,000 or 100,000; 100,000 doubled the writer's peak memory to
	// 1 GB for nothing more); rows still wait at most FlushInterval.
	BatchSize int `yaml:"batch_size"`
	// Retention is the audit writer's scheduled anonymisation and deletion of old audit rows.
	Retention Retention `yaml:"retention"`
}

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Addrs returns the addresses of Addr, split at commas, without blanks.
func (c ClickHouse) Addrs() []string {
	var out []string
	for _, a := range strings.Split(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Retention limits how long audit rows keep personal data, and how long they are kept at all.
// Ages count whole days of the rows' server-side time (decided_at, at). Durations are Go
// durations: "2160h" is 90 days.
type Retention struct {
	// AnonymizeAfter blanks user_key in decisions older than this. Default 2160h (90 days);
	// "-1s" (any negative value) turns anonymisation off.
	AnonymizeAfter time.Duration `yaml:"anonymize_after"`
	// DropAfter is the hard limit: day partitions of decisions, decisions_by_user and deliveries
	// older than this are dropped. Default 0: never. Must be longer than AnonymizeAfter.
	DropAfter time.Duration `yaml:"drop_after"`
	// Interval between retention runs of the audit writer (one also runs at its start).
	// Default 1h; "-1s" (any negative value) turns the job off in this process.
	Interval time.Duration `yaml:"interval"`
}

// Ingest configures the HTTP collector.
type Ingest struct {
	// Listen address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// WriteKeys accepted in Authorization headers. At least one is required.
	WriteKeys []string `yaml:"write_keys"`
	// RateLimit is the most events per second one write key may send (token bucket); past it a
	// request gets 429 with Retry-After. Default 0: no limit. RateBurst is the bucket's size,
	// default max(rate_limit, 500) so a full batch always fits.
	RateLimit int `yaml:"rate_limit"`
	RateBurst int `yaml:"rate_burst"`
	// Linger is how long a record ingest writes waits for others bound for its partition, so
	// that concurrent requests share Kafka produce requests (franz-go's ProducerLinger). Default
	// 1ms: at 2,000 single-event requests/s it halved the broker's CPU and cut ingest's by a
	// quarter, for about a millisecond more per request. Negative: none, every request's
	// records go at once.
	Linger time.Duration `yaml:"linger"`
	// CountryHeader and RegionHeader are trusted request headers set by the site's CDN or load
	// balancer (e.g. CF-IPCountry); ingest derives an event's jurisdiction from them when the
	// event names none. Default "": no header is trusted, since a browser can set any header.
	CountryHeader string `yaml:"country_header"`
	RegionHeader  string `yaml:"region_header"`
	// Jurisdictions maps "CC" or "CC-REGION" codes from those headers to policy jurisdictions.
	// Default: the EU/EEA countries map to "EU", "US-<state>" to itself.
	Jurisdictions map[string]string `yaml:"jurisdictions"`
	// DemoPage serves the consent-banner demo page at /demo/, with the first write key embedded
	// in it (a browser key is public). Default false; `make demo` turns it on.
	DemoPage bool `yaml:"demo_page"`
}

// ProduceLinger is Linger as franz-go's ProducerLinger takes it: 0 for none.
func (i Ingest) ProduceLinger() time.Duration { return max(i.Linger, 0) }

// Metrics configures the Prometheus endpoint of components without an HTTP server of their own.
type Metrics struct {
	// Listen address of GET /metrics for `process`, `sink` and `audit` (and `run`, beside
	// ingest's own /metrics). Default "": off; ingest always serves /metrics on ingest.listen.
	Listen string `yaml:"listen"`
}

// Delivery configures the sinks' retries.
type Delivery struct {
	// MaxAttempts per event before it is dead-lettered. Default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff before the first retry, doubled each attempt with full jitter. Default 200ms.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the jittered backoff. Default 30s. A vendor's Retry-After is a floor on the
	// wait, not capped by this (only by the sinks' 24h sanity limit on any vendor's answer).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout of one vendor request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency is the most requests one sink has in flight to its vendor at once; events of
	// one user key are still sent in order. Default 256: a receiver answering in 20 ms then
	// takes up to 12,800 requests/s per destination, so a one-event-per-request receiver (webhook
	// max_batch: 1) is bound by the sink's CPU rather than by waiting (measured in make bench's
	// one-request-per-event phase: 32 in flight delivered 962 events/s, 256 2,229/s on the same
	// loaded machine). Vendors that batch (Meta, TikTok, Google Ads: up to 1,000 events per
	// request) rarely have more than a few requests in flight. Lower it, or set rate_limit, for a
	// receiver that cannot take that many connections from one client. At most 1024.
	Concurrency int `yaml:"concurrency"`
	// RateLimit is the most requests per second one sink sends to its vendor. Default 0: no
	// limit. A destination's config.rate_limit overrides it.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many requests may go at once above RateLimit. Default 1.
	RateBurst int `yaml:"rate_burst"`
	// BreakerFailures is how many consecutive temporary failures (429, 5xx, timeouts, connection
	// errors) open a destination's circuit breaker. Default 5.
	BreakerFailures int `yaml:"breaker_failures"`
	// BreakerOpen is how long an open breaker sends nothing before one probe request. Default 30s.
	BreakerOpen time.Duration `yaml:"breaker_open"`
	// RetryHorizon is the longest time after its consent decision an event may still be sent;
	// an older one is dead-lettered unsent (error "horizon_exceeded"). The sinks remember consent
	// withdrawals for this long, which is what makes the send-time re-check complete.
	// Default 168h (7 days: Meta refuses older events anyway).
	RetryHorizon time.Duration `yaml:"retry_horizon"`
	// AllowedHosts, when set, is the only hosts a destination's endpoint or url may name:
	// exact names or "*.example.com" for subdomains. It lives in the config, not the policy, so
	// whoever edits the policy cannot point a webhook anywhere. Default: empty, any host (the
	// private-address guard still applies).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// LedgerDir is where each sink keeps its local copy of the destination's delivery ledger (a
	// pebble store per destination and process; the ledger topic is the truth, this is a cache
	// read back from it at start). Default: none, a folder under the system's temporary
	// directory, so a machine restart only costs a rebuild from the topic.
	LedgerDir string `yaml:"ledger_dir"`
}

// Processor configures the consent processor.
type Processor struct {
	// StateDir holds the processor's on-disk state (one pebble store per assigned raw partition,
	// under a folder per instance), relative to the config file's folder. Default "state": next to
	// the config, so each deployment (and each test's config folder) keeps its own, and it
	// survives restarts (a temporary folder would make every reboot a cold restore). Deleting it
	// is safe: the stores are rebuilt from the changelog topics.
	StateDir string `yaml:"state_dir"`
	// QueuedChoices, under the policy's hold: an event whose user's choice is already in the raw
	// log behind it (a processor catching up) is decided at once under that choice instead of
	// held (docs/consent.md "Events before the choice"). Default false: it saves the processor
	// the hold's work, but the event then reaches each vendor in a request of its own instead of
	// with the choosing event's, and with a vendor taking one user per request (GA4) the extra
	// requests cost more than the processor saves (docs/performance.md).
	QueuedChoices bool `yaml:"queued_choices"`
}

// Dedup configures the processor's resend deduplication.
type Dedup struct {
	// Window is how long an event id is remembered per user: a second event with the same
	// (user key, event_id) inside it gets no second decision. Default 168h (7 days).
	Window time.Duration `yaml:"window"`
}

// StatePath is the processor's state folder, resolved against the config file's folder.
func (c *Config) StatePath() string {
	if filepath.IsAbs(c.Processor.StateDir) || c.File == "" {
		return c.Processor.StateDir
	}
	return filepath.Join(filepath.Dir(c.File), c.Processor.StateDir)
}

// Load reads the config file, applies environment overrides and defaults, validates it and
// loads its policy file. Errors name the file, the field (and line where known) and the reason.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	pf := c.PolicyFile
	if !filepath.IsAbs(pf) {
		pf = filepath.Join(filepath.Dir(path), pf)
	}
	if c.Policy, err = policy.Load(pf); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse builds a Config from YAML and an environment lookup, without loading the policy.
func Parse(file string, data []byte, env func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, policy.CleanYAMLError(err))
	}
	c := &Config{File: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, policy.CleanYAMLError(err))
	}
	if err := applyEnv(c, "TOLLGATE", env); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		var fe *policy.FieldError
		if errors.As(err, &fe) {
			if line := policy.LineOf(&root, fe.Field); line > 0 {
				return nil, fmt.Errorf("%s:%d: %w", file, line, fe)
			}
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(i *int, v int) {
		if *i == 0 {
			*i = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = []string{"127.0.0.1:9092"}
	}
	def(&c.Kafka.TopicPrefix, "tg.")
	defInt(&c.Kafka.Partitions, 6)
	// A cluster (three brokers or more) gets replicated topics that survive a broker going away
	// without losing acknowledged writes; a single local broker cannot replicate.
	if len(c.Kafka.Brokers) >= 3 {
		defInt(&c.Kafka.ReplicationFactor, 3)
	}
	defInt(&c.Kafka.ReplicationFactor, 1)
	if len(c.Kafka.Brokers) >= 3 && c.Kafka.ReplicationFactor >= 2 {
		defInt(&c.Kafka.MinInsyncReplicas, 2)
	}
	defInt(&c.Kafka.MinInsyncReplicas, 1)
	def(&c.Kafka.Compression, "none")
	def(&c.ClickHouse.Addr, "127.0.0.1:9000")
	def(&c.ClickHouse.Database, "tollgate")
	def(&c.ClickHouse.Username, "default")
	defDur(&c.ClickHouse.FlushInterval, time.Second)
	defInt(&c.ClickHouse.BatchSize, 50000)
	defDur(&c.ClickHouse.Retention.AnonymizeAfter, 90*24*time.Hour)
	defDur(&c.ClickHouse.Retention.Interval, time.Hour)
	def(&c.Ingest.Listen, "127.0.0.1:8080")
	defDur(&c.Ingest.Linger, time.Millisecond)
	if c.Ingest.Jurisdictions == nil {
		c.Ingest.Jurisdictions = DefaultJurisdictions()
	}
	defInt(&c.Delivery.MaxAttempts, 5)
	defDur(&c.Delivery.InitialBackoff, 200*time.Millisecond)
	defDur(&c.Delivery.MaxBackoff, 30*time.Second)
	defDur(&c.Delivery.Timeout, 10*time.Second)
	defInt(&c.Delivery.Concurrency, 256)
	defInt(&c.Delivery.RateBurst, 1)
	defInt(&c.Delivery.BreakerFailures, 5)
	defDur(&c.Delivery.BreakerOpen, 30*time.Second)
	defDur(&c.Delivery.RetryHorizon, 7*24*time.Hour)
	def(&c.PolicyFile, "policy.yaml")
	def(&c.Processor.StateDir, "state")
	defDur(&c.Dedup.Window, 7*24*time.Hour)
	c.setSecurityDefaults()
}

// Compressions are the values of kafka.compression.
var Compressions = []string{"none", "snappy", "lz4", "zstd"}

func (c *Config) validate() error {
	if err := c.validateSecurity(); err != nil {
		return err
	}
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			return &policy.FieldError{Field: fmt.Sprintf("kafka.brokers[%d]", i), Reason: fmt.Sprintf("%q is not host:port", b)}
		}
	}
	if rf := c.Kafka.ReplicationFactor; rf < 1 || rf > 32767 {
		return &policy.FieldError{Field: "kafka.replication_factor", Reason: fmt.Sprintf("%d: must be between 1 and 32767", rf)}
	}
	if m := c.Kafka.MinInsyncReplicas; m < 1 || m > c.Kafka.ReplicationFactor {
		return &policy.FieldError{Field: "kafka.min_insync_replicas", Reason: fmt.Sprintf("%d: must be at least 1 and at most kafka.replication_factor (%d)", m, c.Kafka.ReplicationFactor)}
	}
	if !slices.Contains(Compressions, c.Kafka.Compression) {
		return &policy.FieldError{Field: "kafka.compression", Reason: fmt.Sprintf("%q: must be one of %s", c.Kafka.Compression, strings.Join(Compressions, ", "))}
	}
	if len(c.Ingest.WriteKeys) == 0 {
		return &policy.FieldError{Field: "ingest.write_keys", Reason: "at least one write key is required"}
	}
	for i, k := range c.Ingest.WriteKeys {
		if strings.TrimSpace(k) == "" {
			return &policy.FieldError{Field: fmt.Sprintf("ingest.write_keys[%d]", i), Reason: "is empty"}
		}
	}
	if len(c.ClickHouse.Addrs()) == 0 {
		return &policy.FieldError{Field: "clickhouse.addr", Reason: "at least one host:port is required"}
	}
	for _, a := range c.ClickHouse.Addrs() {
		if !strings.Contains(a, ":") {
			return &policy.FieldError{Field: "clickhouse.addr", Reason: fmt.Sprintf("%q is not host:port", a)}
		}
	}
	// The cluster name is spliced into ON CLUSTER clauses: letters, digits and _ only.
	if cl := c.ClickHouse.Cluster; cl != "" && !clusterName.MatchString(cl) {
		return &policy.FieldError{Field: "clickhouse.cluster", Reason: fmt.Sprintf("%q: use letters, digits and _ only", cl)}
	}
	if c.ClickHouse.PasswordEnv != "" {
		if _, ok := os.LookupEnv(c.ClickHouse.PasswordEnv); !ok {
			return &policy.FieldError{Field: "clickhouse.password_env", Reason: fmt.Sprintf("environment variable %s is not set", c.ClickHouse.PasswordEnv)}
		}
	}
	if r := c.ClickHouse.Retention; r.DropAfter < 0 || (r.DropAfter > 0 && r.AnonymizeAfter > 0 && r.DropAfter <= r.AnonymizeAfter) {
		return &policy.FieldError{Field: "clickhouse.retention.drop_after", Reason: fmt.Sprintf("%s: must be 0 (never) or longer than anonymize_after (%s)", r.DropAfter, r.AnonymizeAfter)}
	}
	if c.Ingest.Linger > time.Second {
		return &policy.FieldError{Field: "ingest.linger", Reason: fmt.Sprintf("%s: must be at most 1s (every request waits for it; negative: none)", c.Ingest.Linger)}
	}
	if c.Delivery.MaxAttempts < 1 {
		return &policy.FieldError{Field: "delivery.max_attempts", Reason: "must be at least 1"}
	}
	if c.Delivery.Concurrency < 1 || c.Delivery.Concurrency > 1024 {
		return &policy.FieldError{Field: "delivery.concurrency", Reason: "must be between 1 and 1024"}
	}
	if c.Delivery.RateLimit < 0 {
		return &policy.FieldError{Field: "delivery.rate_limit", Reason: "must not be negative"}
	}
	if c.Delivery.RateBurst < 1 {
		return &policy.FieldError{Field: "delivery.rate_burst", Reason: "must be at least 1"}
	}
	if c.Delivery.BreakerFailures < 1 {
		return &policy.FieldError{Field: "delivery.breaker_failures", Reason: "must be at least 1"}
	}
	if c.Delivery.MaxBackoff > c.Delivery.RetryHorizon || c.Delivery.BreakerOpen > c.Delivery.RetryHorizon {
		return &policy.FieldError{Field: "delivery.retry_horizon", Reason: "must be longer than delivery.max_backoff and delivery.breaker_open"}
	}
	return nil
}

// DefaultJurisdictions maps EU/EEA country codes to "EU" and US states to "US-<state>".
func DefaultJurisdictions() map[string]string {
	m := map[string]string{}
	for _, cc := range strings.Fields("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO") {
		m[cc] = "EU"
	}
	for _, st := range strings.Fields("CA CO CT VA UT TX OR MT IA DE NE NH NJ TN MN MD IN KY RI") {
		m["US-"+st] = "US-" + st
	}
	return m
}
