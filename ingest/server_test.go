package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

const oneEvent = `{"event":"purchase","user_id":"u-42"}`
const oneSegment = `{"type":"track","event":"Order Completed","userId":"u-42"}`

func TestAuth(t *testing.T) {
	h := newHarness(t, "")
	segBatch := `{"batch":[` + oneSegment + `]}`
	tests := []struct {
		name, path, body string
		headers          hdr
		want             int
		challenge        string
	}{
		{"events without key", "/v1/events", oneEvent, nil, 401, "Bearer"},
		{"events wrong key", "/v1/events", oneEvent, bearer("wk_nope"), 401, "Bearer"},
		{"events key prefix", "/v1/events", oneEvent, bearer(testKey[:5]), 401, "Bearer"},
		{"events empty bearer", "/v1/events", oneEvent, hdr{"Authorization": "Bearer "}, 401, "Bearer"},
		{"events basic instead of bearer", "/v1/events", oneEvent, basic(testKey), 401, "Bearer"},
		{"events first key", "/v1/events", oneEvent, bearer(testKey), 202, ""},
		{"events second key", "/v1/events", oneEvent, bearer(otherKey), 202, ""},
		{"events lower-case scheme", "/v1/events", oneEvent, hdr{"Authorization": "bearer " + testKey}, 202, ""},
		{"consent without key", "/v1/consent", `{"user_id":"u","consent":{"analytics":true}}`, nil, 401, "Bearer"},
		{"segment without key", "/v1/batch", segBatch, nil, 401, "Basic"},
		{"segment wrong key", "/v1/batch", segBatch, basic("wk_nope"), 401, "Basic"},
		{"segment bearer instead of basic", "/v1/batch", segBatch, bearer(testKey), 401, "Basic"},
		{"segment basic", "/v1/batch", segBatch, basic(testKey), 200, ""},
		{"segment track basic", "/v1/track", oneSegment, basic(testKey), 200, ""},
		{"segment body writeKey", "/v1/batch", `{"writeKey":"` + testKey + `","batch":[` + oneSegment + `]}`, nil, 200, ""},
		{"segment wrong body writeKey", "/v1/batch", `{"writeKey":"wk_nope","batch":[` + oneSegment + `]}`, nil, 401, "Basic"},
		{"segment header wins over body writeKey", "/v1/batch", `{"writeKey":"` + testKey + `","batch":[` + oneSegment + `]}`, basic("wk_nope"), 401, "Basic"},
	}
	stored := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hd, body := h.do("POST", tt.path, tt.body, tt.headers)
			require.Equal(t, tt.want, code, body)
			if tt.challenge != "" {
				assert.Contains(t, hd.Get("WWW-Authenticate"), tt.challenge)
				assert.NotContains(t, body, testKey)
			} else {
				stored++
			}
		})
	}
	assert.Equal(t, stored, h.count(), "only authenticated requests store events")
	assert.Equal(t, float64(11), h.metric("tollgate_ingest_rejected_events_total", "reason", "unauthorized"))
}

func TestWriteKeysConstantTime(t *testing.T) {
	wk := newWriteKeys([]string{"a", "bb", ""})
	assert.True(t, wk.valid("a"))
	assert.True(t, wk.valid("bb"))
	assert.False(t, wk.valid(""), "an empty configured key never authenticates")
	assert.False(t, wk.valid("b"))
	assert.False(t, wk.valid("aa"))
}

func batchOf(n int, event string) string {
	return `{"batch":[` + strings.TrimSuffix(strings.Repeat(event+",", n), ",") + `]}`
}

func gzipped(t *testing.T, s string) *bytes.Buffer {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return &buf
}

func TestLimits(t *testing.T) {
	h := newHarness(t, "")
	big := `{"event":"x","user_id":"u","properties":{"pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`
	tests := []struct {
		name    string
		path    string
		body    io.Reader
		headers hdr
		want    int
	}{
		{"500 events", "/v1/events", strings.NewReader(batchOf(500, oneEvent)), bearer(testKey), 202},
		{"501 events", "/v1/events", strings.NewReader(batchOf(501, oneEvent)), bearer(testKey), 413},
		{"501 segment messages", "/v1/batch", strings.NewReader(batchOf(501, oneSegment)), basic(testKey), 413},
		{"body over 1 MiB", "/v1/events", strings.NewReader(big), bearer(testKey), 413},
		{"body over 1 MiB without length", "/v1/events", io.MultiReader(strings.NewReader(big)), bearer(testKey), 413},
		{"segment body over 1 MiB", "/v1/batch", strings.NewReader(big), basic(testKey), 413},
		{"consent body over 1 MiB", "/v1/consent", strings.NewReader(big), bearer(testKey), 413},
		{"gzip body", "/v1/events", gzipped(t, oneEvent), bearer(testKey).with("Content-Encoding", "gzip"), 202},
		{"gzip bomb", "/v1/events", gzipped(t, big), bearer(testKey).with("Content-Encoding", "gzip"), 413},
		{"broken gzip", "/v1/events", strings.NewReader(oneEvent), bearer(testKey).with("Content-Encoding", "gzip"), 400},
		{"unknown encoding", "/v1/events", strings.NewReader(oneEvent), bearer(testKey).with("Content-Encoding", "br"), 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hd, body := h.doReader("POST", tt.path, tt.body, tt.headers)
			require.Equal(t, tt.want, code, body)
			if code >= 400 {
				assert.Contains(t, body, `"error"`)
			}
			if code == 413 && strings.Contains(body, "body is larger") {
				assert.Equal(t, "close", hd.Get("Connection"), "the rest of a huge body is not read")
			}
		})
	}
	assert.EqualValues(t, 501, h.count(), "only the 500-event batch and the gzip event were stored")
}

func TestMalformed(t *testing.T) {
	h := newHarness(t, "")
	tests := []struct{ name, body, msg string }{
		{"empty", ``, "malformed JSON"},
		{"not JSON", `event=purchase`, "malformed JSON at byte"},
		{"truncated", `{"event":"purchase","user_id":"u`, "malformed JSON"},
		{"trailing garbage", oneEvent + `}`, "malformed JSON"},
		{"array", `[` + oneEvent + `]`, "must be a JSON object"},
		{"string", `"purchase"`, "must be a JSON object"},
		{"invalid UTF-8", "{\"event\":\"a\xff\",\"user_id\":\"u\"}", "not valid UTF-8"},
		{"batch not an array", `{"batch":{"event":"x"}}`, `field "batch" must be an array`},
		{"empty batch", `{"batch":[]}`, `field "batch" is empty`},
		{"nested too deep for the parser", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hd, body := h.do("POST", "/v1/events", tt.body, bearer(testKey))
			require.Equal(t, 400, code, body)
			assert.Equal(t, "application/json", hd.Get("Content-Type"))
			var reply errorBody
			require.NoError(t, json.Unmarshal([]byte(body), &reply))
			assert.Contains(t, reply.Error, tt.msg)
		})
	}
	assert.Zero(t, h.count())
}

// TestNoSuccessWhenNotStored: whatever way Kafka fails, no 2xx is answered.
func TestNoSuccessWhenNotStored(t *testing.T) {
	down := &failingProducer{err: kgo.ErrClientClosed}
	paths := []struct{ path, body string }{
		{"/v1/events", batchOf(3, oneEvent)},
		{"/v1/consent", `{"user_id":"u","consent":{"analytics":false}}`},
		{"/v1/batch", batchOf(3, oneSegment)},
		{"/v1/track", oneSegment},
	}
	for _, p := range []struct {
		name string
		prod Producer
	}{{"producer fails", down}, {"producer loses records", lossyProducer{}}} {
		for _, pp := range paths {
			t.Run(p.name+pp.path, func(t *testing.T) {
				h := newHarnessWith(t, "", p.prod)
				auth := bearer(testKey)
				if pp.path == "/v1/batch" || pp.path == "/v1/track" {
					auth = basic(testKey)
				}
				code, hd, body := h.do("POST", pp.path, pp.body, auth)
				require.Equal(t, 503, code, body)
				assert.Equal(t, "1", hd.Get("Retry-After"))
				assert.Positive(t, h.metric("tollgate_ingest_produce_errors_total"))
				assert.Positive(t, h.metric("tollgate_ingest_rejected_events_total", "reason", "unavailable"))
				assert.Zero(t, h.metric("tollgate_ingest_accepted_events_total"))
			})
		}
	}
	assert.Equal(t, 4, down.calls)
}

// TestBrokerRefusesWrites: a real client against a broker that drops every produce request
// times out into a 503, and nothing is on the topic.
func TestBrokerRefusesWrites(t *testing.T) {
	h := newHarness(t, "", WithProduceTimeout(300*time.Millisecond))
	h.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		return nil, errors.New("broker down"), true
	})
	start := time.Now()
	code, hd, body := h.do("POST", "/v1/events", batchOf(2, oneEvent), bearer(testKey))
	require.Equal(t, 503, code, body)
	assert.Equal(t, "1", hd.Get("Retry-After"))
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Zero(t, h.count())
	logs := h.logs.FilterMessage("produce failed").All()
	require.NotEmpty(t, logs)
	assert.Equal(t, "timeout", logs[0].ContextMap()["error_class"])
}

func TestHealth(t *testing.T) {
	h := newHarness(t, "")
	code, _, body := h.do("GET", "/healthz", "", nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok", body)
	code, _, _ = h.do("GET", "/readyz", "", nil)
	assert.Equal(t, 200, code)
	code, _, _ = h.do("POST", "/healthz", "", nil)
	assert.Equal(t, 405, code, "method patterns")

	down := newHarnessWith(t, "", &failingProducer{err: errors.New("no broker")})
	code, _, _ = down.do("GET", "/readyz", "", nil)
	assert.Equal(t, 503, code)
	code, _, _ = down.do("GET", "/healthz", "", nil)
	assert.Equal(t, 200, code, "alive even when Kafka is not")
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, "")
	h.do("POST", "/v1/events", `{"batch":[`+oneEvent+`,{"event":""},`+oneEvent+`]}`, bearer(testKey))
	h.do("POST", "/v1/events", `nope`, bearer(testKey))
	code, _, body := h.do("GET", "/metrics", "", nil)
	require.Equal(t, 200, code)
	for _, name := range []string{"tollgate_ingest_received_events_total", "tollgate_ingest_accepted_events_total",
		"tollgate_ingest_rejected_events_total", "tollgate_ingest_request_duration_seconds_count", "tollgate_ingest_produce_errors_total",
		"tollgate_ingest_requests_total", `tollgate_received_events_total{stage="ingest"}`, `tollgate_sent_events_total{destination="raw",stage="ingest"}`} {
		assert.Contains(t, body, name, "/metrics serves the default registry")
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tollgate_ingest_received_events_total", nil, 3},
		{"tollgate_ingest_accepted_events_total", nil, 2},
		{"tollgate_ingest_rejected_events_total", []string{"reason", "invalid"}, 1},
		{"tollgate_ingest_rejected_events_total", []string{"reason", "malformed"}, 1},
		{"tollgate_ingest_request_duration_seconds", []string{"endpoint", "events"}, 2},
		{"tollgate_ingest_produce_errors_total", nil, 0},
		{"tollgate_ingest_requests_total", []string{"code", "202", "endpoint", "events"}, 1},
		{"tollgate_received_events_total", []string{"stage", "ingest"}, 3},
		{"tollgate_sent_events_total", []string{"stage", "ingest", "destination", "raw"}, 2},
		{"tollgate_discarded_events_total", []string{"stage", "ingest", "reason", "invalid"}, 1},
	} {
		assert.Equal(t, c.want, h.metric(c.name, c.labels...), "%s %v", c.name, c.labels)
	}
}

// TestDefaultRegistry: several Servers on the default registry share its collectors.
func TestDefaultRegistry(t *testing.T) {
	cfg := testConfig(t, "")
	assert.NotPanics(t, func() {
		New(cfg, lossyProducer{}, zap.NewNop())
		New(cfg, lossyProducer{}, zap.NewNop())
	})
}

// slowProducer acknowledges only when released, to test draining.
type slowProducer struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *slowProducer) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	p.once.Do(func() { close(p.started) })
	<-p.release
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		out[i] = kgo.ProduceResult{Record: r}
	}
	return out
}

func (p *slowProducer) Ping(context.Context) error { return nil }

// TestServeDrains: when the context ends, an in-flight request still gets its 202 after the
// acknowledgement, new connections are refused, and Serve returns nil.
func TestServeDrains(t *testing.T) {
	prod := &slowProducer{started: make(chan struct{}), release: make(chan struct{})}
	h := newHarnessWith(t, "", prod)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()

	type result struct {
		code int
		err  error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/events", strings.NewReader(oneEvent))
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{code: resp.StatusCode}
	}()
	select {
	case <-prod.started:
	case r := <-got:
		t.Fatalf("request finished before reaching Kafka: %+v %v", r, h.logs.All())
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the producer")
	}
	cancel()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "listener closed while draining")
	select {
	case err := <-done:
		t.Fatalf("Serve returned before the in-flight request finished: %v", err)
	default:
	}
	close(prod.release)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, 202, r.code)
	require.NoError(t, <-done)
}

func TestRunListenError(t *testing.T) {
	h := newHarnessWith(t, "  listen: \"256.0.0.1:http-nope\"\n", lossyProducer{})
	err := h.srv.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ingest: listen")
}

func TestRunServesConfiguredAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	h := newHarnessWith(t, fmt.Sprintf("  listen: %q\n", addr), lossyProducer{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 5*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

// TestLogsCarryNoPersonalData: bodies, identifiers, property values, write keys and addresses
// never reach a log line, whatever the outcome.
func TestLogsCarryNoPersonalData(t *testing.T) {
	secretEvent := `{"event":"purchase","user_id":"user-secret-42","anonymous_id":"anon-secret","context":{"ip":"203.0.113.9"},"properties":{"email":"` + testEmail + `"}}`
	for _, prod := range []Producer{&failingProducer{err: errors.New("dial tcp 10.1.2.3:9092: refused")}, lossyProducer{}} {
		h := newHarnessWith(t, "", prod)
		h.do("POST", "/v1/events", secretEvent, bearer(testKey).with("X-Forwarded-For", "203.0.113.9"))
		h.do("POST", "/v1/events", `{"batch":[`+secretEvent+`,{"event":5,"user_id":"user-secret-42"}]}`, bearer(testKey))
		h.do("POST", "/v1/events", secretEvent, bearer("wk_guess_secret"))
		h.do("POST", "/v1/consent", `{"user_id":"user-secret-42","consent":{"analytics":true}}`, bearer(testKey))
		require.NotZero(t, h.logs.Len())
		for _, e := range h.logs.All() {
			line := e.Message + fmt.Sprint(e.ContextMap())
			for _, secret := range []string{"user-secret", "anon-secret", "203.0.113.9", testEmail, testKey, "wk_guess", "10.1.2.3"} {
				assert.NotContains(t, line, secret)
			}
		}
	}
}

func TestServerErrorLogRedactsClients(t *testing.T) {
	h := newHarnessWith(t, "", lossyProducer{})
	w := &serverErrorLog{log: h.srv.log}
	_, _ = w.Write([]byte("http: TLS handshake error from 203.0.113.9:51234: EOF\n"))
	e := h.logs.All()
	require.Len(t, e, 1)
	assert.NotContains(t, fmt.Sprint(e[0].ContextMap()), "203.0.113.9")
}

// A client that hangs up (a closing tab's sendBeacon) does not cancel the Kafka write.
func TestClientHangupDoesNotCancelTheWrite(t *testing.T) {
	h := newHarnessWith(t, "", ctxProducer{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/events", strings.NewReader(`{"event":"page_view","user_id":"u"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
}
