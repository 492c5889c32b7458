package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

// secret is the example secret of the Standard Webhooks specification.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testDest(url string) *policy.Destination {
	return &policy.Destination{
		Name: "ops", Type: "webhook", Purpose: "necessary",
		Fields: []string{"user_id", "context.page_url", "properties.error", "properties.cart"},
		Config: map[string]any{"url": url, "secret_env": "OPS_HOOK_SECRET", "allow_private_network": true},
	}
}

func envWith(v string) sdk.Env {
	return func(k string) (string, bool) {
		if k == "OPS_HOOK_SECRET" {
			return v, true
		}
		return "", false
	}
}

func newAdapter(t testing.TB, d *policy.Destination) sdk.Adapter {
	a, err := New(d, envWith(secret))
	require.NoError(t, err)
	return a
}

func testEvent(id string, ts time.Time) *schemas.FilteredEvent {
	return &schemas.FilteredEvent{
		EventID: id, Event: "checkout_error", TimestampMs: ts.UnixMilli(), UserKey: "u-42",
		Fields: map[string]string{
			"user_id":          `"u-42"`,
			"context.page_url": `"https://shop.example/checkout"`,
			"properties.error": `"card_declined"`,
			"properties.cart":  `{"items":2,"total":149.0}`,
		},
	}
}

// verify is a receiver's check written from the Standard Webhooks spec, independent of Sign.
func verify(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), time.Unix(ts, 0), 5*time.Minute)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	require.Contains(t, strings.Fields(h.Get("webhook-signature")), want)
}

func TestNewConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit   func(*policy.Destination)
		secret string
		err    string
	}{
		{func(d *policy.Destination) { delete(d.Config, "url") }, secret, "destinations.ops.config.url: is required"},
		{func(d *policy.Destination) { d.Config["url"] = "ftp://x/y" }, secret, `destinations.ops.config.url: "ftp://x/y" is not an http:// or https:// URL`},
		{func(d *policy.Destination) { d.Config["url"] = "https://u:p@x/y" }, secret, "destinations.ops.config.url: must not hold credentials (sign with secret_env instead)"},
		{func(d *policy.Destination) {}, "", "destinations.ops.config.secret_env: environment variable OPS_HOOK_SECRET is not set"},
		{func(d *policy.Destination) {}, "whsec_***", "destinations.ops.config.secret_env: environment variable OPS_HOOK_SECRET: whsec_ secret is not valid base64"},
		{func(d *policy.Destination) { d.Config["max_batch"] = 5000 }, secret, "destinations.ops.config.max_batch: must be between 1 and 1000"},
	} {
		d := testDest("http://127.0.0.1:1/hook")
		tc.edit(d)
		_, err := New(d, envWith(tc.secret))
		require.EqualError(t, err, tc.err)
	}
}

func TestRequestFormatAndSignature(t *testing.T) {
	s := standin.New("webhook", standin.WithWebhookSecret(secret))
	defer s.Close()
	d := testDest(s.URL + "/hook?src=tollgate")
	ts := time.UnixMilli(1763892000123)
	batch := []*schemas.FilteredEvent{testEvent("e1", ts), testEvent("e2", ts)}
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), batch)
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, v)

	r := s.Requests()[0]
	require.True(t, r.Accepted) // the stand-in verified the signature too
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/hook", r.Path)
	require.Equal(t, "tollgate", r.Query.Get("src"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, MessageID(batch), r.Header.Get("webhook-id"))
	require.Regexp(t, `^batch_[0-9a-f]{32}$`, r.Header.Get("webhook-id"))
	verify(t, secret, r.Header, r.Body)
	ev := `{"event_id":"%s","event":"checkout_error","timestamp":"2025-11-23T10:00:00.123Z","user_id":"u-42",
		"context":{"page_url":"https://shop.example/checkout"},
		"properties":{"error":"card_declined","cart":{"items":2,"total":149.0}}}`
	require.JSONEq(t, `{"events":[`+strings.Replace(ev, "%s", "e1", 1)+`,`+strings.Replace(ev, "%s", "e2", 1)+`]}`, string(r.Body))
}

// TestReusedSignerSignsEachRequestAlone: the adapter reuses keyed HMAC states; each request's
// signature must still cover only its own id, timestamp and body.
func TestReusedSignerSignsEachRequestAlone(t *testing.T) {
	d := testDest("http://127.0.0.1:1/hook")
	a := newAdapter(t, d)
	ts := time.UnixMilli(1763892000123)
	for i := range 5 {
		req, err := a.NewRequest(context.Background(), []*schemas.FilteredEvent{testEvent(fmt.Sprintf("e%d", i), ts)})
		require.NoError(t, err)
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		verify(t, secret, req.Header, body)
	}
}

// The specification's published test vector.
func TestSignKnownVector(t *testing.T) {
	key, err := DecodeSecret(secret)
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)))
}

func TestMessageID(t *testing.T) {
	a, b := testEvent("a", time.Now()), testEvent("b", time.Now())
	require.Equal(t, "a", MessageID([]*schemas.FilteredEvent{a}))
	ab := MessageID([]*schemas.FilteredEvent{a, b})
	require.Equal(t, ab, MessageID([]*schemas.FilteredEvent{a, b}))
	require.NotEqual(t, ab, MessageID([]*schemas.FilteredEvent{b, a}))
}

// A secret without the whsec_ prefix is used as raw bytes.
func TestRawSecret(t *testing.T) {
	key, err := DecodeSecret("plain-secret")
	require.NoError(t, err)
	require.Equal(t, []byte("plain-secret"), key)
	s := standin.New("webhook", standin.WithWebhookSecret("plain-secret"))
	defer s.Close()
	d := testDest(s.URL)
	a, err := New(d, envWith("plain-secret"))
	require.NoError(t, err)
	v, err := sinktest.Attempt(context.Background(), d, a, []*schemas.FilteredEvent{testEvent("e1", time.Now())})
	require.NoError(t, err)
	require.Equal(t, sdk.Delivered, v.Class)
	require.Equal(t, "e1", s.Requests()[0].Header.Get("webhook-id"))
}

func TestWrongSecretIsRefused(t *testing.T) {
	s := standin.New("webhook", standin.WithWebhookSecret("whsec_"+base64.StdEncoding.EncodeToString([]byte("other"))))
	defer s.Close()
	d := testDest(s.URL)
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{testEvent("e1", time.Now())})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_401"}, v)
}

func TestClassify(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	now := time.Now()
	for _, tc := range []struct {
		status int
		ra     string
		want   sdk.Verdict
	}{
		{200, "", sdk.Verdict{Class: sdk.Delivered}},
		{204, "", sdk.Verdict{Class: sdk.Delivered}},
		{301, "", sdk.Verdict{Class: sdk.Permanent, Reason: "http_301"}},
		{307, "", sdk.Verdict{Class: sdk.Permanent, Reason: "http_307"}},
		{400, "", sdk.Verdict{Class: sdk.Permanent, Reason: "http_400", Split: true}},
		{404, "", sdk.Verdict{Class: sdk.Permanent, Reason: "http_404"}},
		{410, "", sdk.Verdict{Class: sdk.Permanent, Reason: "http_410"}},
		{429, "17", sdk.Verdict{Class: sdk.Retry, Reason: "http_429", RetryAfter: 17 * time.Second}},
		{500, "", sdk.Verdict{Class: sdk.Retry, Reason: "http_500"}},
		{502, "", sdk.Verdict{Class: sdk.Retry, Reason: "http_502"}},
		{503, "120", sdk.Verdict{Class: sdk.Retry, Reason: "http_503", RetryAfter: 2 * time.Minute}},
		{504, "", sdk.Verdict{Class: sdk.Retry, Reason: "http_504"}},
	} {
		require.Equal(t, tc.want, a.Classify(tc.status, http.Header{"Retry-After": {tc.ra}}, nil, nil), tc.status)
	}
	v := a.Classify(503, http.Header{"Retry-After": {now.Add(90 * time.Second).UTC().Format(http.TimeFormat)}}, nil, nil)
	require.InDelta(t, 90*time.Second, v.RetryAfter, float64(2*time.Second))
}

func TestRedirectIsNotFollowed(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			hit = true
			return
		}
		http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	d := testDest(srv.URL + "/hook")
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{testEvent("e1", time.Now())})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_307"}, v)
	require.False(t, hit)
}

func TestStandinFaults(t *testing.T) {
	s := standin.New("webhook")
	defer s.Close()
	d := testDest(s.URL + "/hook")
	d.Config["timeout"] = "200ms"
	a := newAdapter(t, d)
	batch := []*schemas.FilteredEvent{testEvent("e1", time.Now())}
	s.SetFailures(standin.Fault{Status: 410}, standin.Fault{Status: 503, RetryAfter: "8"}, standin.Fault{Hang: 5 * time.Second})
	v, _ := sinktest.Attempt(context.Background(), d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_410"}, v)
	v, _ = sinktest.Attempt(context.Background(), d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_503", RetryAfter: 8 * time.Second}, v)
	start := time.Now()
	v, err := sinktest.Attempt(context.Background(), d, a, batch)
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "timeout"}, v, "the adapter's timeout, not the default")
	require.Less(t, time.Since(start), 2*time.Second)
	s.RejectEvents("e1")
	v, _ = sinktest.Attempt(context.Background(), d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_400", Split: true}, v)
}

func TestMaxBatch(t *testing.T) {
	d := testDest("http://127.0.0.1:1")
	require.Equal(t, DefaultMaxBatch, newAdapter(t, d).MaxBatch())
	d.Config["max_batch"] = 1
	require.Equal(t, 1, newAdapter(t, d).MaxBatch())
	require.Equal(t, DefaultTimeout, sdk.RequestTimeout(newAdapter(t, d), time.Second))
}

func BenchmarkNewRequest(b *testing.B) {
	a := newAdapter(b, testDest("http://127.0.0.1:1"))
	batch := make([]*schemas.FilteredEvent, 100)
	for i := range batch {
		batch[i] = testEvent(strconv.Itoa(i), time.Now())
	}
	ctx := context.Background()
	b.ReportAllocs()
	testenv.LoopCPU(b, func() {
		if _, err := a.NewRequest(ctx, batch); err != nil {
			b.Fatal(err)
		}
	})
}

// jsonEvent is the body's event as encoding/json writes it: the reference appendBody must match.
type jsonEvent struct {
	EventID     string                     `json:"event_id"`
	Event       string                     `json:"event"`
	Timestamp   string                     `json:"timestamp"`
	UserID      json.RawMessage            `json:"user_id,omitempty"`
	AnonymousID json.RawMessage            `json:"anonymous_id,omitempty"`
	Context     map[string]json.RawMessage `json:"context,omitempty"`
	Properties  map[string]json.RawMessage `json:"properties,omitempty"`
}

func referenceBody(t *testing.T, batch []*schemas.FilteredEvent) []byte {
	evs := make([]jsonEvent, len(batch))
	for i, ev := range batch {
		e := &evs[i]
		e.EventID, e.Event = ev.EventID, ev.Event
		e.Timestamp = sdk.EventTime(ev).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		for path := range ev.Fields {
			v, _ := sdk.FieldJSON(ev, path)
			head, name, nested := strings.Cut(path, ".")
			switch {
			case !nested && head == "user_id":
				e.UserID = v
			case !nested && head == "anonymous_id":
				e.AnonymousID = v
			case nested && head == "context":
				if e.Context == nil {
					e.Context = map[string]json.RawMessage{}
				}
				e.Context[name] = v
			case nested && head == "properties":
				if e.Properties == nil {
					e.Properties = map[string]json.RawMessage{}
				}
				e.Properties[name] = v
			}
		}
	}
	b, err := json.Marshal(map[string]any{"events": evs})
	require.NoError(t, err)
	return b
}

// TestBodyMatchesEncodingJSON: the hand-written body is byte for byte what encoding/json writes,
// for values that need escaping, HTML characters, whitespace, non-ASCII and raw strings.
func TestBodyMatchesEncodingJSON(t *testing.T) {
	odd := []string{`"plain"`, `"<b>&amp;</b>"`, `{"a": [1, 2,  3]}`, `"caf\u00e9 ☕"`, `"line\u2028sep"`, "\"tab\\tq\\\"\"",
		`not json at all`, `12.50`, `true`, `null`, `"back\\slash"`, "\"raw\u2029\"", `{"z":1,"a":{"y":"<"}}`, ` 7 `, "\x7f"}
	var batch []*schemas.FilteredEvent
	for i, v := range odd {
		ev := testEvent("id-"+strconv.Itoa(i), time.Now())
		ev.Fields = map[string]string{"context.page_url": v, "properties.x": v, "properties.a" + strconv.Itoa(i): `"k"`, "user_id": v}
		if i%2 == 0 {
			delete(ev.Fields, "user_id")
			ev.Fields["anonymous_id"] = v
		}
		if i == 3 {
			ev.EventID, ev.Event = "id \"<quoted>\" é", "Order\tCompleted"
		}
		batch = append(batch, ev)
	}
	empty := testEvent("bare", time.Now())
	empty.Fields = nil
	batch = append(batch, empty)
	require.Equal(t, string(referenceBody(t, batch)), string(appendBody(nil, batch)))
	for _, ev := range batch {
		one := []*schemas.FilteredEvent{ev}
		require.Equal(t, string(referenceBody(t, one)), string(appendBody(nil, one)))
	}
}
