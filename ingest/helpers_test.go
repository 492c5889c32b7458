package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

const (
	testKey   = "wk_test_secret"
	otherKey  = "wk_other"
	rawTopic  = "tg.events.raw"
	testEmail = "Ann@Example.com"
)

const testPolicy = `
version: "2026-11-01"
purposes: [necessary, analytics, marketing]
jurisdictions:
  EU:      {model: opt_in}
  US-CA:   {model: opt_out}
  default: {model: opt_in}
destinations:
  ga4:
    type: ga4
    purpose: analytics
    fields: [context.page_url]
segment_categories:
  Analytics: analytics
  Advertising: marketing
  SaleOfData: marketing
  Functional: necessary
`

// testConfig returns a loaded config; extra is YAML added under ingest:.
func testConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	yaml := "ingest:\n  write_keys: [\"" + testKey + "\", \"" + otherKey + "\"]\n" + extra
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Policy, err = policy.Parse("policy.yaml", []byte(testPolicy))
	require.NoError(t, err)
	return cfg
}

// harness is a Server in front of an in-process Kafka (kfake).
type harness struct {
	t       testing.TB
	srv     *Server
	start   []*dto.MetricFamily // the default registry when the harness was made
	cluster *kfake.Cluster
	client  *kgo.Client
	logs    *observer.ObservedLogs
}

func newHarness(t testing.TB, ingestYAML string, opts ...Option) *harness {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.SeedTopics(3, rawTopic))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	h := newHarnessWith(t, ingestYAML, Gathering(client), opts...) // as runIngest serves
	h.cluster, h.client = cluster, client
	return h
}

// newHarnessWith serves with any producer (no Kafka behind it).
func newHarnessWith(t testing.TB, ingestYAML string, p Producer, opts ...Option) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	srv := New(testConfig(t, ingestYAML), p, zap.New(core), opts...)
	start, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	return &harness{t: t, srv: srv, start: start, logs: logs}
}

type hdr map[string]string

func bearer(key string) hdr { return hdr{"Authorization": "Bearer " + key} }

func basic(key string) hdr {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(key, "")
	return hdr{"Authorization": r.Header.Get("Authorization")}
}

func (h hdr) with(k, v string) hdr {
	out := hdr{k: v}
	for key, val := range h {
		out[key] = val
	}
	return out
}

// do serves one request and returns status, headers and body.
func (h *harness) do(method, path, body string, headers hdr) (int, http.Header, string) {
	return h.doReader(method, path, strings.NewReader(body), headers)
}

func (h *harness) doReader(method, path string, body io.Reader, headers hdr) (int, http.Header, string) {
	h.t.Helper()
	req := httptest.NewRequest(method, path, body)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.String()
}

// count returns how many records the raw topic holds.
func (h *harness) count() int64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(h.client).ListEndOffsets(ctx, rawTopic)
	require.NoError(h.t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// records reads every record of the raw topic (it must hold want).
func (h *harness) records(want int) []*kgo.Record {
	h.t.Helper()
	require.EqualValues(h.t, want, h.count(), "records on the raw topic")
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...), kgo.ConsumeTopics(rawTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(h.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(h.t, ctx.Err(), "timed out reading records")
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	return got
}

// events decodes the raw topic's records as events, by event_id, checking key and header.
func (h *harness) events(want int) map[string]schemas.Event {
	h.t.Helper()
	out := map[string]schemas.Event{}
	for _, r := range h.records(want) {
		require.Equal(h.t, "event", header(r, "tg-type"))
		ev, err := schemas.Events.Decode(r.Value)
		require.NoError(h.t, err)
		require.Equal(h.t, ev.UserKey(), string(r.Key), "record key is the user key")
		out[ev.EventID] = ev
	}
	require.Len(h.t, out, want, "distinct event ids")
	return out
}

func header(r *kgo.Record, key string) string {
	for _, hd := range r.Headers {
		if hd.Key == key {
			return string(hd.Value)
		}
	}
	return ""
}

// metric returns how much a counter (or a histogram's sample count) with the given labels grew
// since the harness was made. The metrics live on the default registry, like every tollgate
// metric; the tests of this package do not run in parallel, so the growth is this harness's.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	now, err := prometheus.DefaultGatherer.Gather()
	require.NoError(h.t, err)
	return metricValue(now, name, labels...) - metricValue(h.start, name, labels...)
}

func metricValue(mfs []*dto.MetricFamily, name string, labels ...string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue next
				}
			}
			if m.GetHistogram() != nil {
				return float64(m.GetHistogram().GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// failingProducer refuses every record, as a client whose broker is down would.
type failingProducer struct {
	err   error
	mu    sync.Mutex
	calls int
}

func (p *failingProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		out[i] = kgo.ProduceResult{Record: r, Err: p.err}
	}
	return out
}

func (p *failingProducer) Ping(context.Context) error { return p.err }

// lossyProducer reports no error but returns fewer results than records: a broken producer.
type lossyProducer struct{}

func (lossyProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	if len(rs) < 2 {
		return nil
	}
	return kgo.ProduceResults{{Record: rs[0]}}
}

func (lossyProducer) Ping(context.Context) error { return nil }

// ctxProducer reports the context it was given: a canceled one fails every record, as franz-go
// does for records not yet sent.
type ctxProducer struct{}

func (ctxProducer) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		out[i] = kgo.ProduceResult{Record: r, Err: ctx.Err()}
	}
	return out
}

func (ctxProducer) Ping(context.Context) error { return nil }
