package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/deploy/harness"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

const (
	writeKey   = "wk_e2e"
	hookSecret = "whsec_ZTJlLW9wcy1zZWNyZXQ="
)

// pipeline is one running `tollgate run` with its own topics, database and vendor stand-ins.
type pipeline struct {
	t              *testing.T
	dir, ingestURL string
	prefix, db     string
	ga4, meta, ops *standin.Server
	cfg            *config.Config
	logs           *syncBuffer
	whole          *harness.Proc // `tollgate run`, when the pipeline is one process
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	return startPipelineEnv(t)
}

// startPipelineEnv is startPipeline with extra environment variables for the binary, e.g.
// TOLLGATE_DELIVERY_MAX_ATTEMPTS=100 to override the test config.
func startPipelineEnv(t *testing.T, env ...string) *pipeline {
	t.Helper()
	p := newPipeline(t)
	p.start(env...)
	return p
}

// startPipelineWithPolicy is startPipelineEnv with the policy text edited first.
func startPipelineWithPolicy(t *testing.T, edit func(policy string) string, env ...string) *pipeline {
	t.Helper()
	p := newPipeline(t)
	path := filepath.Join(p.dir, "policy.yaml")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	writeFile(t, path, edit(string(b)))
	p.start(env...)
	return p
}

// start runs `tollgate run` on the pipeline's config and waits until ingest answers.
func (p *pipeline) start(env ...string) {
	t := p.t
	t.Helper()
	run, err := harness.Start("tollgate run", binary, p.env(env...), p.logs, "run", "--config", p.configPath())
	require.NoError(t, err)
	p.whole = run
	t.Cleanup(p.stop)
	p.waitReady()
}

// deployments numbers the pipelines of this run: scenarios run in parallel (t.Parallel), and
// each one's topics and database must be its own even when two start in the same nanosecond.
var deployments atomic.Int64

// newPipeline writes the config and policy of a fresh deployment (its own topics, database and
// vendor stand-ins) without starting anything.
func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	return newPipelineWith(t, func(p *pipeline, listen string) string {
		return fmt.Sprintf(configYAML, kafkaAddr, p.prefix, chAddr, p.db, listen, writeKey)
	})
}

// newPipelineWith is newPipeline with the config file's text made by configFor from the
// deployment (its prefix and database) and ingest's listen address.
func newPipelineWith(t *testing.T, configFor func(p *pipeline, listen string) string) *pipeline {
	t.Helper()
	run := fmt.Sprintf("%d%03d", time.Now().UnixNano(), deployments.Add(1)%1000)
	p := &pipeline{
		t: t, dir: t.TempDir(), prefix: "e2e" + run + ".", db: "tollgate_e2e_" + run,
		ga4: standin.New("ga4"), meta: standin.New("meta_capi"),
		ops:  standin.New("webhook", standin.WithWebhookSecret(hookSecret)),
		logs: &syncBuffer{},
	}
	t.Cleanup(func() { p.ga4.Close(); p.meta.Close(); p.ops.Close() })
	listen := harness.FreeAddr()
	p.ingestURL = "http://" + listen
	writeFile(t, filepath.Join(p.dir, "policy.yaml"), fmt.Sprintf(policyYAML, p.ga4.URL, p.meta.URL, p.ops.URL))
	writeFile(t, p.configPath(), configFor(p, listen))
	cfg, err := config.Load(p.configPath())
	require.NoError(t, err)
	p.cfg = cfg
	t.Cleanup(p.dropDatabase)
	return p
}

func (p *pipeline) configPath() string { return filepath.Join(p.dir, "config.yaml") }

// env is the environment of a tollgate child: the vendor secrets the policy names.
func (p *pipeline) env(extra ...string) []string {
	return append(append(os.Environ(), "GA4_API_SECRET=ga4-secret", "META_TOKEN=meta-token", "OPS_HOOK_SECRET="+hookSecret), extra...)
}

func (p *pipeline) waitReady() {
	err := harness.WaitReady(context.Background(), p.ingestURL, 60*time.Second)
	require.NoError(p.t, err, "ingest never became ready; logs:\n%s", p.logs)
}

// stop sends SIGTERM and requires a clean exit, as the README promises.
func (p *pipeline) stop() {
	if p.whole != nil {
		require.NoError(p.t, p.whole.Stop(), "tollgate run did not exit cleanly; logs:\n%s", p.logs)
	}
}

// dropDatabase removes the deployment's audit database and its topics (registered first, so it
// runs last).
func (p *pipeline) dropDatabase() {
	db, err := audit.Open(context.Background(), p.cfg)
	if err == nil {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+p.db)
		db.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := harness.DeleteTopics(ctx, p.cfg.Kafka.Brokers, p.prefix); err != nil {
		p.t.Logf("leaving the topics %s* behind: %v", p.prefix, err)
	}
}

func (p *pipeline) openDB() *audit.DB {
	db, err := audit.Open(context.Background(), p.cfg)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { db.Close() })
	return db
}

func writeFile(t *testing.T, path, content string) {
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// syncBuffer collects a child's stderr while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines() []string { return strings.Split(s.String(), "\n") }

const configYAML = `
kafka:
  brokers: [%q]
  topic_prefix: %q
  # Three, not the default six: every scenario creates its own topics and each processor opens a
  # store per partition; three still spread users over several partitions and processors, at
  # half the broker's and the processes' work.
  partitions: 3
clickhouse:
  addr: %q
  database: %q
  flush_interval: 200ms
ingest:
  listen: %q
  write_keys: [%q]
delivery:
  max_attempts: 3
  initial_backoff: 50ms
policy_file: policy.yaml
`

const policyYAML = `
version: "e2e-1"
purposes: [necessary, analytics, marketing]
jurisdictions:
  EU:      {model: opt_in}
  US-CA:   {model: opt_out}
  default: {model: opt_in}
destinations:
  ga4:
    type: ga4
    purpose: analytics
    fields: [context.page_url, properties.order_value, properties.currency, properties.session_id]
    config: {endpoint: %q, measurement_id: "G-TEST", api_secret_env: GA4_API_SECRET, allow_private_network: true}
  meta:
    type: meta_capi
    purpose: marketing
    sale: true
    fields: [context.page_url, context.user_agent, properties.order_value, properties.currency, properties.email, properties.phone, properties.fbclid]
    hash: [properties.email, properties.phone]
    config: {endpoint: %q, pixel_id: "123", access_token_env: META_TOKEN, allow_private_network: true}
  ops:
    type: webhook
    purpose: necessary
    fields: [context.page_url, properties.error]
    config: {url: "%s/hook", secret_env: OPS_HOOK_SECRET, allow_private_network: true}
segment_categories:
  Analytics: analytics
  Advertising: marketing
  Functional: necessary
sensitive:
  - name: health
    field: context.page_url
    pattern: "(?i)/(pharmacy|clinic|health|diagnos)"
consent_sources:
  tcf:
    analytics: [1, 8, 9]
    marketing: [1, 2, 3, 4, 7]
  gcm:
    analytics: [analytics_storage]
    marketing: [ad_storage, ad_user_data]
`
