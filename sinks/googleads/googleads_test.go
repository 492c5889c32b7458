package googleads

import (
	"context"
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

const (
	emailHash = "a5ba5d3ebd5bf4ab4ef1a4f1d8cbcd2e3a0bd5b1a4e1d2c3b4a5968778695a4b"
	phoneHash = "b3e0f1a2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
)

func testDest(endpoint string) *policy.Destination {
	return &policy.Destination{
		Name: "gads", Type: "google_ads", Purpose: "marketing", Sale: true,
		Fields: []string{"context.user_agent", "properties.order_value", "properties.currency", "properties.order_id",
			"properties.email", "properties.phone", "properties.gclid"},
		Hash: []string{"properties.email", "properties.phone"},
		Config: map[string]any{"endpoint": endpoint, "access_token_env": "GADS_TOKEN", "customer_id": "123-456-7890",
			"conversion_action_id": 987654, "allow_private_network": true},
	}
}

func env(k string) (string, bool) {
	v, ok := map[string]string{"GADS_TOKEN": "ya29.token"}[k]
	return v, ok
}

func newAdapter(t testing.TB, d *policy.Destination) sdk.Adapter {
	a, err := New(d, env)
	require.NoError(t, err)
	return a
}

func testEvent(id string, ts time.Time) *schemas.FilteredEvent {
	return &schemas.FilteredEvent{
		EventID: id, Event: "purchase", TimestampMs: ts.UnixMilli(), UserKey: "u-42",
		Consent: map[string]bool{"marketing": true},
		Fields: map[string]string{
			"context.user_agent":     `"Mozilla/5.0"`,
			"properties.order_value": `149.0`,
			"properties.currency":    `"eur"`,
			"properties.email":       `"` + emailHash + `"`,
			"properties.phone":       `"` + phoneHash + `"`,
			"properties.gclid":       `"Cj0KCQiA"`,
		},
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*policy.Destination)
		err  string
	}{
		{func(d *policy.Destination) { delete(d.Config, "customer_id") }, "destinations.gads.config.customer_id: is required"},
		{func(d *policy.Destination) { delete(d.Config, "conversion_action_id") }, "destinations.gads.config.conversion_action_id: is required"},
		{func(d *policy.Destination) { d.Config["customer_id"] = "abc" }, "destinations.gads.config.customer_id: must be a numeric id"},
		{func(d *policy.Destination) { d.Config["access_token_env"] = "NONE" }, "destinations.gads.config.access_token_env: environment variable NONE is not set"},
		{func(d *policy.Destination) { d.Hash = nil }, "destinations.gads.hash: must include properties.email (google_ads accepts it only SHA-256 hashed)"},
	} {
		d := testDest("http://127.0.0.1:1")
		tc.edit(d)
		_, err := New(d, env)
		require.EqualError(t, err, tc.err)
	}
}

func TestNewRequestFormat(t *testing.T) {
	s := standin.New("google_ads")
	defer s.Close()
	d := testDest(s.URL)
	d.Config["login_customer_id"] = "111-222-3333"
	ev := testEvent("e1", time.UnixMilli(1763892000123))
	ev.Fields["properties.order_id"] = `"ORD-1"`
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, v)
	r := s.Requests()[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/v1/events:ingest", r.Path)
	require.Equal(t, "Bearer ya29.token", r.Header.Get("Authorization"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.JSONEq(t, `{
		"destinations":[{"operatingAccount":{"accountType":"GOOGLE_ADS","accountId":"1234567890"},
			"loginAccount":{"accountType":"GOOGLE_ADS","accountId":"1112223333"},"productDestinationId":"987654"}],
		"encoding":"HEX",
		"events":[{"transactionId":"ORD-1","eventTimestamp":"2025-11-23T10:00:00.123Z","eventSource":"WEB",
			"userData":{"userIdentifiers":[{"emailAddress":"`+emailHash+`"},{"phoneNumber":"`+phoneHash+`"}]},
			"adIdentifiers":{"gclid":"Cj0KCQiA"},
			"consent":{"adUserData":"CONSENT_GRANTED","adPersonalization":"CONSENT_GRANTED"},
			"conversionValue":149,"currency":"EUR","eventDeviceInfo":{"userAgent":"Mozilla/5.0"}}]}`, string(r.Body))
	require.Equal(t, []string{"ORD-1"}, s.EventIDs())
}

func TestConsentAndDefaults(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1")).(*adapter)
	require.Nil(t, a.destinations[0].LoginAccount)
	var e event
	ev := testEvent("e9", time.Now())
	ev.Consent = map[string]bool{"marketing": false}
	fill(&e, ev)
	require.Equal(t, consent{AdUserData: "CONSENT_DENIED", AdPersonalization: "CONSENT_DENIED"}, e.Consent)
	require.Equal(t, "e9", e.TransactionID) // no order id: the event id is the dedup key

	// The processor's per-key answer, when the record has one, is what Google Ads gets.
	ev.VendorConsent = map[string]bool{schemas.VendorAdUserData: true, schemas.VendorAdPersonalization: false}
	fill(&e, ev)
	require.Equal(t, consent{AdUserData: "CONSENT_GRANTED", AdPersonalization: "CONSENT_DENIED"}, e.Consent)
}

func TestValidate(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	now := time.Now()
	require.NoError(t, a.Validate(testEvent("1", now), now))
	clickOnly := &schemas.FilteredEvent{Fields: map[string]string{"properties.gclid": `"x"`}}
	require.NoError(t, a.Validate(clickOnly, now))
	rawEmail := &schemas.FilteredEvent{Fields: map[string]string{"properties.email": `"ann@example.com"`}}
	require.ErrorContains(t, a.Validate(rawEmail, now), "neither a hashed email or phone nor a click id")
}

func googleErr(code int, status, details string) []byte {
	return []byte(`{"error":{"code":` + strconv.Itoa(code) + `,"message":"m","status":"` + status + `","details":[` + details + `]}}`)
}

func violations(fields ...string) string {
	s := `{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[`
	for i, f := range fields {
		if i > 0 {
			s += ","
		}
		field, reason, _ := strings.Cut(f, "|")
		s += `{"field":"` + field + `","description":"d","reason":"` + reason + `"}`
	}
	return s + `]}`
}

func TestClassify(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	batch := make([]*schemas.FilteredEvent, 3)
	retryInfo := `{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}`
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   []byte
		want   sdk.Verdict
	}{
		{"ok", 200, nil, []byte(`{"requestId":"r"}`), sdk.Verdict{Class: sdk.Delivered}},
		{"quota", 429, nil, googleErr(429, "RESOURCE_EXHAUSTED", retryInfo), sdk.Verdict{Class: sdk.Retry, Reason: "resource_exhausted", RetryAfter: 30 * time.Second}},
		{"quota header longer", 429, http.Header{"Retry-After": {"60"}}, googleErr(429, "RESOURCE_EXHAUSTED", retryInfo),
			sdk.Verdict{Class: sdk.Retry, Reason: "resource_exhausted", RetryAfter: time.Minute}},
		{"unknown", 500, nil, googleErr(500, "UNKNOWN", ""), sdk.Verdict{Class: sdk.Retry, Reason: "unknown"}},
		{"deadline", 504, nil, googleErr(504, "DEADLINE_EXCEEDED", ""), sdk.Verdict{Class: sdk.Retry, Reason: "deadline_exceeded"}},
		{"bare 503", 503, nil, []byte("<html/>"), sdk.Verdict{Class: sdk.Retry, Reason: "http_503"}},
		{"unauthenticated", 401, nil, googleErr(401, "UNAUTHENTICATED", ""), sdk.Verdict{Class: sdk.Permanent, Reason: "unauthenticated"}},
		{"invalid request", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("destinations[0].product_destination_id")),
			sdk.Verdict{Class: sdk.Permanent, Reason: "invalid_argument"}},
		{"one bad row", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("events[1].user_data.user_identifiers[0]|INVALID_HEX_ENCODING")),
			sdk.Verdict{Class: sdk.Retry, Reason: "batch_rejected_for_invalid_rows", Failed: map[int]string{1: "invalid_hex_encoding"}, ResendRest: true}},
		{"bad row and bad request", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("events[1].x", "encoding")),
			sdk.Verdict{Class: sdk.Permanent, Reason: "invalid_argument"}},
		{"row out of range", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("events[7].x")),
			sdk.Verdict{Class: sdk.Permanent, Reason: "invalid_argument"}},
		{"all rows bad", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("events[0].a", "events[1].b", "events[2].c")),
			sdk.Verdict{Class: sdk.Permanent, Reason: "invalid_argument", Failed: map[int]string{0: "invalid_row", 1: "invalid_row", 2: "invalid_row"}}},
		{"duplicates only", 400, nil, googleErr(400, "INVALID_ARGUMENT", violations("events[0].transaction_id|CLICK_CONVERSION_ALREADY_EXISTS")),
			sdk.Verdict{Class: sdk.Delivered}},
		{"too recent", 400, nil, googleErr(400, "FAILED_PRECONDITION", `{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"TOO_RECENT_CONVERSION_ACTION"}`),
			sdk.Verdict{Class: sdk.Retry, Reason: "too_recent", RetryAfter: 6 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, a.Classify(tc.status, tc.header, tc.body, batch))
		})
	}
}

func TestAgainstStandin(t *testing.T) {
	s := standin.New("google_ads")
	defer s.Close()
	d := testDest(s.URL)
	a := newAdapter(t, d)
	ctx := context.Background()
	batch := []*schemas.FilteredEvent{testEvent("e1", time.Now()), testEvent("e2", time.Now()), testEvent("e3", time.Now())}

	s.SetFailures(standin.Fault{Status: 429, RetryAfter: "20"}, standin.Fault{Status: 500})
	v, _ := sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "resource_exhausted", RetryAfter: 20 * time.Second}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "internal"}, v)

	s.RejectEvents("e2")
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "batch_rejected_for_invalid_rows", Failed: map[int]string{1: "invalid_event"}, ResendRest: true}, v)
	v, _ = sinktest.Attempt(ctx, d, a, []*schemas.FilteredEvent{batch[0], batch[2]})
	require.Equal(t, sdk.Delivered, v.Class)
	require.Equal(t, []string{"e1", "e3"}, s.EventIDs())
}

func BenchmarkNewRequest(b *testing.B) {
	a := newAdapter(b, testDest("http://127.0.0.1:1"))
	batch := make([]*schemas.FilteredEvent, 100)
	for i := range batch {
		batch[i] = testEvent(strconv.Itoa(i), time.Now())
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.NewRequest(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
