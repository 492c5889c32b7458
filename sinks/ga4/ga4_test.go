package ga4

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
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

const digest = "a5ba5d3ebd5bf4ab4ef1a4f1d8cbcd2e3a0bd5b1a4e1d2c3b4a5968778695a4b"

func testDest(endpoint string, fields ...string) *policy.Destination {
	if fields == nil {
		fields = []string{"context.page_url", "properties.order_value", "properties.currency", "properties.session_id"}
	}
	return &policy.Destination{
		Name: "ga4", Type: "ga4", Purpose: "analytics", Fields: fields,
		Config: map[string]any{"endpoint": endpoint, "measurement_id": "G-TEST", "api_secret_env": "GA4_API_SECRET", "allow_private_network": true},
	}
}

func env(k string) (string, bool) {
	v, ok := map[string]string{"GA4_API_SECRET": "sec&ret"}[k]
	return v, ok
}

func newAdapter(t testing.TB, d *policy.Destination) sdk.Adapter {
	a, err := New(d, env)
	require.NoError(t, err)
	return a
}

func testEvent(id, user string, ts time.Time) *schemas.FilteredEvent {
	return &schemas.FilteredEvent{
		EventID: id, Event: "purchase", TimestampMs: ts.UnixMilli(), UserKey: user, Purpose: "analytics",
		Consent: map[string]bool{"analytics": true, "marketing": true},
		Fields: map[string]string{
			"context.page_url":       `"https://shop.example/checkout"`,
			"properties.order_value": `149.0`,
			"properties.currency":    `"EUR"`,
			"properties.session_id":  `"1763892000"`,
		},
	}
}

func TestNewConfigErrors(t *testing.T) {
	for key, want := range map[string]string{
		"measurement_id": "destinations.ga4.config.measurement_id: is required",
		"api_secret_env": "destinations.ga4.config.api_secret_env: is required",
	} {
		d := testDest("http://127.0.0.1:1")
		delete(d.Config, key)
		_, err := New(d, env)
		require.ErrorContains(t, err, want)
	}
	d := testDest("http://127.0.0.1:1")
	d.Config["api_secret_env"] = "MISSING"
	_, err := New(d, env)
	require.EqualError(t, err, "destinations.ga4.config.api_secret_env: environment variable MISSING is not set")
}

func sentBody(t *testing.T, s *standin.Server, i int) map[string]any {
	var m map[string]any
	require.NoError(t, json.Unmarshal(s.Requests()[i].Body, &m))
	return m
}

func TestNewRequestFormat(t *testing.T) {
	s := standin.New("ga4")
	defer s.Close()
	d := testDest(s.URL)
	ts := time.UnixMilli(1763892000123)
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{testEvent("e1", "a-7f3", ts)})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, v)

	r := s.Requests()[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/mp/collect", r.Path)
	require.Equal(t, "G-TEST", r.Query.Get("measurement_id"))
	require.Equal(t, "sec&ret", r.Query.Get("api_secret"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.JSONEq(t, `{"client_id":"a-7f3","timestamp_micros":1763892000123000,
		"consent":{"ad_user_data":"GRANTED","ad_personalization":"GRANTED"},
		"events":[{"name":"purchase","timestamp_micros":1763892000123000,"params":{
			"engagement_time_msec":100,"page_url":"https://shop.example/checkout","order_value":149.0,
			"currency":"EUR","session_id":"1763892000"}}]}`, string(r.Body))
}

// Whatever the policy lists, nothing identifying reaches GA4: no email or phone field (raw or
// hashed), no hashed field, no user id or IP, no value that looks like an address or a digest.
func TestNoPIIInBody(t *testing.T) {
	s := standin.New("ga4")
	defer s.Close()
	d := testDest(s.URL, "context.page_url", "context.ip", "user_id", "anonymous_id", "properties.email",
		"properties.phone", "properties.contact_email", "properties.PhoneNumber", "properties.customer",
		"properties.note", "properties.ref", "properties.plan")
	d.Hash = []string{"properties.email", "properties.customer"}
	ev := testEvent("e1", "a-7f3", time.Now())
	ev.Fields = map[string]string{
		"context.page_url":         `"https://shop.example/confirm?email=Ann%40Example.com&x=1"`,
		"context.ip":               `"203.0.113.7"`,
		"user_id":                  `"u-42"`,
		"anonymous_id":             `"anon-9"`,
		"properties.email":         `"` + digest + `"`,
		"properties.phone":         `"+16505551212"`,
		"properties.contact_email": `"ann@example.com"`,
		"properties.PhoneNumber":   `"6505551212"`,
		"properties.customer":      `"` + digest + `"`,
		"properties.note":          `"write to Bob@Example.org please"`,
		"properties.ref":           `"` + digest + `"`,
		"properties.plan":          `"gold"`,
	}
	_, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	raw := strings.ToLower(string(s.Requests()[0].Body))
	for _, pii := range []string{"ann", "bob@", "%40", "203.0.113.7", "u-42", "anon-9", "6505551212", digest} {
		require.NotContains(t, raw, pii)
	}
	params := sentBody(t, s, 0)["events"].([]any)[0].(map[string]any)["params"]
	require.Equal(t, map[string]any{"engagement_time_msec": 100.0, "plan": "gold"}, params)
}

func TestConsent(t *testing.T) {
	s := standin.New("ga4")
	defer s.Close()
	d := testDest(s.URL)
	a := newAdapter(t, d)
	granted, denied, unknown := testEvent("1", "c", time.Now()), testEvent("2", "c", time.Now()), testEvent("3", "c", time.Now())
	denied.Consent = map[string]bool{"analytics": true, "marketing": false}
	unknown.Consent = nil
	for i, batch := range [][]*schemas.FilteredEvent{{granted}, {denied}, {unknown}, {granted, denied}} {
		_, err := sinktest.Attempt(context.Background(), d, a, batch)
		require.NoError(t, err)
		want := "DENIED"
		if i == 0 {
			want = "GRANTED"
		}
		require.Equal(t, map[string]any{"ad_user_data": want, "ad_personalization": want}, sentBody(t, s, i)["consent"], i)
	}
}

// The processor's per-key answer (a CMP's Consent Mode state or Google's reading of a TC
// string) is what GA4 gets; in a batch, one DENIED per key wins.
func TestConsentPerKey(t *testing.T) {
	s := standin.New("ga4")
	defer s.Close()
	d := testDest(s.URL)
	a := newAdapter(t, d)
	userDataOnly, both := testEvent("1", "c", time.Now()), testEvent("2", "c", time.Now())
	userDataOnly.VendorConsent = map[string]bool{schemas.VendorAdUserData: true, schemas.VendorAdPersonalization: false}
	both.VendorConsent = map[string]bool{schemas.VendorAdUserData: true, schemas.VendorAdPersonalization: true}
	for i, batch := range [][]*schemas.FilteredEvent{{userDataOnly}, {both}, {both, userDataOnly}} {
		_, err := sinktest.Attempt(context.Background(), d, a, batch)
		require.NoError(t, err)
		want := map[string]any{"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
		if i == 1 {
			want["ad_personalization"] = "GRANTED"
		}
		require.Equal(t, want, sentBody(t, s, i)["consent"], i)
	}
}

func TestSanitise(t *testing.T) {
	for in, want := range map[string]string{
		"purchase":              "purchase",
		"Order Completed":       "Order_Completed",
		"add-to-cart":           "add_to_cart",
		"1st_visit":             "st_visit",
		"_internal":             "internal",
		"":                      "event",
		"€€€":                   "event",
		"session_start":         "tg_session_start",
		"firebase_x":            "tg_firebase_x",
		"gtag.config":           "tg_gtag_config",
		"käse":                  "k_se",
		strings.Repeat("a", 50): strings.Repeat("a", 40),
	} {
		got := sanitise(in)
		require.Equal(t, want, got, in)
		require.Regexp(t, `^[A-Za-z][A-Za-z0-9_]{0,39}$`, got)
	}
}

func TestValueTruncation(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1")).(*adapter)
	ev := testEvent("1", "c", time.Now())
	ev.Fields["context.page_url"] = `"https://shop.example/` + strings.Repeat("é", 200) + `"`
	p, number, ok := a.paramValue(ev, param{path: "context.page_url", name: "page_url"})
	require.True(t, ok)
	require.False(t, number)
	require.Equal(t, MaxValueLen, len([]rune(p)))
}

func TestBatching(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	require.Equal(t, 25, a.MaxBatch())
	var evs []*schemas.FilteredEvent
	for i := range 60 {
		user := "a"
		if i%2 == 1 {
			user = "b"
		}
		evs = append(evs, testEvent(strconv.Itoa(i), user, time.Now()))
	}
	_, err := a.NewRequest(context.Background(), evs[:2])
	require.ErrorContains(t, err, "batch mixes clients")

	batches := sdk.SplitBatch(a, evs)
	require.Len(t, batches, 4) // a: 25+5, b: 25+5
	for _, b := range batches {
		req, err := a.NewRequest(context.Background(), b)
		require.NoError(t, err)
		var got struct {
			ClientID string `json:"client_id"`
			Events   []any  `json:"events"`
		}
		data, _ := io.ReadAll(req.Body)
		require.NoError(t, json.Unmarshal(data, &got))
		require.Equal(t, b[0].UserKey, got.ClientID)
		require.Len(t, got.Events, len(b))
		require.LessOrEqual(t, len(b), 25)
	}
}

func TestValidate(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.Validate(testEvent("1", "c", now.Add(-71*time.Hour)), now))
	require.ErrorContains(t, a.Validate(testEvent("1", "c", now.Add(-73*time.Hour)), now), "ga4 accepts events at most 72h0m0s old")
	require.ErrorContains(t, a.Validate(testEvent("1", "", now), now), "no user key")
}

func TestClassify(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	ra := http.Header{"Retry-After": {"5"}}
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, a.Classify(204, nil, nil, nil))
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_429", RetryAfter: 5 * time.Second}, a.Classify(429, ra, nil, nil))
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_500"}, a.Classify(500, nil, nil, nil))
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_400", Split: true}, a.Classify(400, nil, nil, nil))
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "http_302"}, a.Classify(302, nil, nil, nil))
}

func TestAgainstStandinFaults(t *testing.T) {
	s := standin.New("ga4")
	defer s.Close()
	d := testDest(s.URL)
	a := newAdapter(t, d)
	s.SetFailures(standin.Fault{Status: 503, RetryAfter: "3"})
	batch := []*schemas.FilteredEvent{testEvent("1", "c", time.Now())}
	v, err := sinktest.Attempt(context.Background(), d, a, batch)
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_503", RetryAfter: 3 * time.Second}, v)
	v, _ = sinktest.Attempt(context.Background(), d, a, batch)
	require.Equal(t, sdk.Delivered, v.Class)
}
