package meta

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/sinktest"
)

const (
	emailHash = "a5ba5d3ebd5bf4ab4ef1a4f1d8cbcd2e3a0bd5b1a4e1d2c3b4a5968778695a4b"
	phoneHash = "b3e0f1a2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
)

func testDest(endpoint string, extra map[string]any) *policy.Destination {
	cfg := map[string]any{"endpoint": endpoint, "pixel_id": "123", "access_token_env": "META_TOKEN", "allow_private_network": true}
	for k, v := range extra {
		cfg[k] = v
	}
	return &policy.Destination{
		Name: "meta", Type: "meta_capi", Purpose: "marketing", Sale: true,
		Fields: []string{"context.page_url", "context.user_agent", "context.ip", "properties.order_value",
			"properties.currency", "properties.email", "properties.phone", "properties.fbclid"},
		Hash:   []string{"properties.email", "properties.phone"},
		Config: cfg,
	}
}

func env(k string) (string, bool) {
	v, ok := map[string]string{"META_TOKEN": "tok/en+1"}[k]
	return v, ok
}

func newAdapter(t testing.TB, d *policy.Destination) sdk.Adapter {
	a, err := New(d, env)
	require.NoError(t, err)
	return a
}

func testEvent(id string, ts time.Time) *schemas.FilteredEvent {
	return &schemas.FilteredEvent{
		EventID: id, Event: "purchase", TimestampMs: ts.UnixMilli(), UserKey: "u-42", Purpose: "marketing",
		Consent: map[string]bool{"marketing": true},
		Fields: map[string]string{
			"context.page_url":       `"https://shop.example/checkout"`,
			"context.user_agent":     `"Mozilla/5.0 (X11)"`,
			"context.ip":             `"203.0.113.7"`,
			"properties.order_value": `149.0`,
			"properties.currency":    `"eur"`,
			"properties.email":       `"` + emailHash + `"`,
			"properties.phone":       `"` + phoneHash + `"`,
			"properties.fbclid":      `"IwAR2xYzAbC"`,
		},
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(d *policy.Destination)
		err  string
	}{
		{"pixel", func(d *policy.Destination) { delete(d.Config, "pixel_id") }, "destinations.meta.config.pixel_id: is required"},
		{"token var", func(d *policy.Destination) { d.Config["access_token_env"] = "NOPE" },
			"destinations.meta.config.access_token_env: environment variable NOPE is not set"},
		{"no token var", func(d *policy.Destination) { delete(d.Config, "access_token_env") },
			"destinations.meta.config.access_token_env: is required (the name of the environment variable holding the secret)"},
		{"unknown key", func(d *policy.Destination) { d.Config["pixel"] = "1" }, "destinations.meta.config.pixel: unknown key"},
		{"endpoint", func(d *policy.Destination) { d.Config["endpoint"] = "graph.facebook.com" },
			`destinations.meta.config.endpoint: "graph.facebook.com" must start with http:// or https://`},
		{"unhashed email", func(d *policy.Destination) { d.Hash = []string{"properties.phone"} },
			"destinations.meta.hash: must include properties.email (meta_capi accepts it only SHA-256 hashed)"},
		{"no user agent", func(d *policy.Destination) { d.Fields = d.Fields[2:] },
			"destinations.meta.fields: must include context.user_agent (Meta refuses website events without client_user_agent)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDest("http://127.0.0.1:1", nil)
			tc.edit(d)
			_, err := New(d, env)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// capture records the one request an adapter sends and answers 200.
func capture(t *testing.T) (*httptest.Server, *http.Request, *[]byte) {
	var got http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = *r.Clone(context.Background())
		body, _ = io.ReadAll(r.Body)
		_, _ = w.Write([]byte(`{"events_received":1,"messages":[],"fbtrace_id":"x"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &got, &body
}

func TestNewRequestFormat(t *testing.T) {
	srv, got, body := capture(t)
	d := testDest(srv.URL, map[string]any{"test_event_code": "TEST123"})
	a := newAdapter(t, d)
	ts := time.UnixMilli(1763892000123)
	v, err := sinktest.Attempt(context.Background(), d, a, []*schemas.FilteredEvent{testEvent("e1", ts)})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, v)

	require.Equal(t, http.MethodPost, got.Method)
	require.Equal(t, "/v21.0/123/events", got.URL.Path)
	require.Equal(t, "tok/en+1", got.URL.Query().Get("access_token"))
	require.Equal(t, "application/json", got.Header.Get("Content-Type"))
	require.JSONEq(t, `{"data":[{
		"event_name":"Purchase","event_time":1763892000,"event_id":"e1","action_source":"website",
		"event_source_url":"https://shop.example/checkout",
		"user_data":{"em":["`+emailHash+`"],"ph":["`+phoneHash+`"],"client_ip_address":"203.0.113.7",
			"client_user_agent":"Mozilla/5.0 (X11)","fbc":"fb.1.1763892000123.IwAR2xYzAbC"},
		"custom_data":{"value":149,"currency":"EUR"},"data_processing_options":[]}],
		"test_event_code":"TEST123"}`, string(*body))
}

// With ldu: auto, an event whose decision says limited_data_use (a user of a US state opt-out
// jurisdiction) carries ["LDU"] with country 1 and the state's code (California 1000; 0 lets Meta
// geolocate a state it documents no code for); every other event carries [].
func TestDataProcessingOptions(t *testing.T) {
	dpo := func(t *testing.T, d *policy.Destination, jurisdiction string, ldu bool) string {
		srv, _, body := capture(t)
		d.Config["endpoint"] = srv.URL
		ev := testEvent("e1", time.Now())
		ev.Jurisdiction, ev.VendorConsent = jurisdiction, map[string]bool{schemas.VendorLimitedDataUse: ldu}
		_, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
		require.NoError(t, err)
		var b struct {
			Data []map[string]json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(*body, &b))
		out := string(b.Data[0]["data_processing_options"])
		for _, k := range []string{"data_processing_options_country", "data_processing_options_state"} {
			if v, ok := b.Data[0][k]; ok {
				out += " " + string(v)
			}
		}
		return out
	}
	auto := func(where string) *policy.Destination {
		d := testDest("", nil)
		if where == "policy" {
			d.LDU = policy.LDUAuto
		} else {
			d.Config["ldu"] = "auto"
		}
		return d
	}
	require.Equal(t, `["LDU"] 1 1000`, dpo(t, auto("policy"), "US-CA", true))
	require.Equal(t, `["LDU"] 1 1000`, dpo(t, auto("config"), "US-CA", true))
	require.Equal(t, `["LDU"] 1 0`, dpo(t, auto("policy"), "US-VA", true))
	require.Equal(t, `[]`, dpo(t, auto("policy"), "EU", false))
	require.Equal(t, `[]`, dpo(t, testDest("", nil), "US-CA", true), "without ldu: auto")
}

func TestAPIVersionAndEventNames(t *testing.T) {
	srv, got, body := capture(t)
	d := testDest(srv.URL, map[string]any{"api_version": "v22.0", "event_names": map[string]any{"checkout_done": "Purchase"}})
	ev := testEvent("e1", time.Now())
	ev.Event = "checkout_done"
	_, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	require.Equal(t, "/v22.0/123/events", got.URL.Path)
	require.Contains(t, string(*body), `"event_name":"Purchase"`)
}

// A value in a hashed slot that is not a digest (a record that skipped hashing) is dropped, not
// hashed again and not sent raw. fbc/fbp/ip/user agent are never hashed or lower-cased.
func TestNeverSendsRawOrRehashedIdentifiers(t *testing.T) {
	srv, _, body := capture(t)
	d := testDest(srv.URL, nil)
	ev := testEvent("e1", time.Now())
	ev.Fields["properties.email"] = `"Ann@Example.com"`
	ev.Fields["properties.fbp"] = `"fb.1.1596403881668.1116446470"`
	_, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	require.NotContains(t, strings.ToLower(string(*body)), "ann@example.com")
	var b struct {
		Data []struct {
			UserData map[string]any `json:"user_data"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(*body, &b))
	ud := b.Data[0].UserData
	require.NotContains(t, ud, "em")
	require.Equal(t, []any{phoneHash}, ud["ph"])
	require.Equal(t, "fb.1.1596403881668.1116446470", ud["fbp"])
	require.Contains(t, ud["fbc"], "IwAR2xYzAbC")
}

func TestValidate(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1", nil))
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.Validate(testEvent("ok", now.Add(-6*24*time.Hour)), now))
	require.ErrorContains(t, a.Validate(testEvent("old", now.Add(-7*24*time.Hour-time.Second)), now), "meta_capi accepts events at most 168h0m0s old")
	noUA := testEvent("noua", now)
	delete(noUA.Fields, "context.user_agent")
	require.ErrorContains(t, a.Validate(noUA, now), "context.user_agent")
}

func TestClassify(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1", nil))
	graph := func(code int, transient string) []byte {
		return []byte(`{"error":{"message":"m","type":"OAuthException","code":` + itoa(code) + `,"is_transient":` + transient + `,"fbtrace_id":"x"}}`)
	}
	ra := http.Header{"Retry-After": {"30"}}
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   []byte
		want   sdk.Verdict
	}{
		{"ok", 200, nil, []byte(`{"events_received":2}`), sdk.Verdict{Class: sdk.Delivered}},
		{"temporary 1", 500, nil, graph(1, "true"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_1"}},
		{"temporary 2", 503, nil, graph(2, "true"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_2"}},
		{"throttled 4", 400, nil, graph(4, "false"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_4"}},
		{"throttled 17", 400, nil, graph(17, "false"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_17"}},
		{"throttled 341 with retry-after", 429, ra, graph(341, "false"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_341", RetryAfter: 30 * time.Second}},
		{"token 190", 400, nil, graph(190, "false"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_190"}},
		{"token 190 on 500", 500, ra, graph(190, "true"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_190"}},
		{"permission 10", 403, nil, graph(10, "false"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_10"}},
		{"permission 200", 400, nil, graph(200, "false"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_200"}},
		{"permission 299", 400, nil, graph(299, "false"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_299"}},
		{"invalid 100", 400, nil, graph(100, "false"), sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_100", Split: true}},
		{"transient 100", 400, nil, graph(100, "true"), sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_100"}},
		{"bare 502", 502, nil, []byte("<html>bad gateway</html>"), sdk.Verdict{Class: sdk.Retry, Reason: "http_502"}},
		{"bare 404", 404, nil, nil, sdk.Verdict{Class: sdk.Permanent, Reason: "http_404"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, a.Classify(tc.status, tc.header, tc.body, nil))
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Round trips against the Meta stand-in: its answers are classified as the real API's would be.
func TestAgainstStandin(t *testing.T) {
	s := standin.New("meta_capi")
	defer s.Close()
	d := testDest(s.URL, nil)
	a := newAdapter(t, d)
	ctx := context.Background()
	batch := []*schemas.FilteredEvent{testEvent("e1", time.Now()), testEvent("e2", time.Now())}

	v, err := sinktest.Attempt(ctx, d, a, batch)
	require.NoError(t, err)
	require.Equal(t, sdk.Delivered, v.Class)
	require.Equal(t, []string{"e1", "e2"}, s.EventIDs())

	s.SetFailures(standin.Fault{Status: 429, RetryAfter: "12"}, standin.Fault{Status: 500}, standin.Fault{Status: 401})
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_4", RetryAfter: 12 * time.Second}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "graph_error_2"}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_190"}, v)

	s.RejectEvents("e2") // one bad event fails the whole request at Meta
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "graph_error_100", Split: true}, v)
}

func BenchmarkNewRequest(b *testing.B) {
	a := newAdapter(b, testDest("http://127.0.0.1:1", nil))
	batch := make([]*schemas.FilteredEvent, 100)
	for i := range batch {
		batch[i] = testEvent("e"+itoa(i), time.Now())
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.NewRequest(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
