package tiktok

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
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
	userHash  = "c0ffee0000000000000000000000000000000000000000000000000000c0ffee"
)

func testDest(endpoint string) *policy.Destination {
	return &policy.Destination{
		Name: "tiktok", Type: "tiktok", Purpose: "marketing", Sale: true,
		Fields: []string{"user_id", "context.page_url", "context.referrer", "context.user_agent", "context.ip",
			"properties.order_value", "properties.currency", "properties.email", "properties.phone", "properties.ttclid"},
		Hash:   []string{"user_id", "properties.email", "properties.phone"},
		Config: map[string]any{"endpoint": endpoint, "pixel_code": "CPIXEL1", "access_token_env": "TT_TOKEN", "allow_private_network": true},
	}
}

func env(k string) (string, bool) {
	v, ok := map[string]string{"TT_TOKEN": "tt-token"}[k]
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
			"user_id":                `"` + userHash + `"`,
			"context.page_url":       `"https://shop.example/checkout"`,
			"context.referrer":       `"https://search.example/"`,
			"context.user_agent":     `"Mozilla/5.0"`,
			"context.ip":             `"203.0.113.7"`,
			"properties.order_value": `"149.50"`,
			"properties.currency":    `"EUR"`,
			"properties.email":       `"` + emailHash + `"`,
			"properties.phone":       `"` + phoneHash + `"`,
			"properties.ttclid":      `"E.C.P.AbC"`,
		},
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*policy.Destination)
		err  string
	}{
		{func(d *policy.Destination) { delete(d.Config, "pixel_code") }, "destinations.tiktok.config.pixel_code: is required"},
		{func(d *policy.Destination) { d.Config["access_token_env"] = "X" }, "destinations.tiktok.config.access_token_env: environment variable X is not set"},
		{func(d *policy.Destination) { d.Hash = d.Hash[1:] }, "destinations.tiktok.hash: must include user_id (tiktok accepts it only SHA-256 hashed)"},
	} {
		d := testDest("http://127.0.0.1:1")
		tc.edit(d)
		_, err := New(d, env)
		require.EqualError(t, err, tc.err)
	}
}

func TestNewRequestFormat(t *testing.T) {
	s := standin.New("tiktok")
	defer s.Close()
	d := testDest(s.URL)
	d.Config["test_event_code"] = "TEST42"
	v, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{testEvent("e1", time.UnixMilli(1763892000999))})
	require.NoError(t, err)
	require.Equal(t, sdk.Verdict{Class: sdk.Delivered}, v)
	r := s.Requests()[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/open_api/v1.3/event/track/", r.Path)
	require.Empty(t, r.Query)
	require.Equal(t, "tt-token", r.Header.Get("Access-Token"))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.JSONEq(t, `{"event_source":"web","event_source_id":"CPIXEL1","test_event_code":"TEST42","data":[{
		"event":"CompletePayment","event_time":1763892000,"event_id":"e1","limited_data_use":false,
		"user":{"email":["`+emailHash+`"],"phone":["`+phoneHash+`"],"external_id":["`+userHash+`"],
			"ttclid":"E.C.P.AbC","ip":"203.0.113.7","user_agent":"Mozilla/5.0"},
		"properties":{"value":149.5,"currency":"EUR"},
		"page":{"url":"https://shop.example/checkout","referrer":"https://search.example/"}}]}`, string(r.Body))
}

// A raw value in a hashed slot is dropped, never sent or hashed again.
func TestRawIdentifierDropped(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	ev := testEvent("e1", time.Now())
	ev.Fields["properties.email"] = `"ann@example.com"`
	ev.Fields["user_id"] = `"u-42"`
	req, err := a.NewRequest(context.Background(), []*schemas.FilteredEvent{ev})
	require.NoError(t, err)
	b, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	require.NotContains(t, string(b), "ann@example.com")
	require.NotContains(t, string(b), `"u-42"`)
	require.NotContains(t, string(b), `"email"`)
}

func TestClassify(t *testing.T) {
	a := newAdapter(t, testDest("http://127.0.0.1:1"))
	code := func(c int) []byte {
		return []byte(`{"code":` + strconv.Itoa(c) + `,"message":"m","request_id":"r","data":{}}`)
	}
	for _, tc := range []struct {
		status int
		body   []byte
		want   sdk.Verdict
	}{
		{200, code(0), sdk.Verdict{Class: sdk.Delivered}},
		{200, code(40100), sdk.Verdict{Class: sdk.Retry, Reason: "tiktok_code_40100"}},
		{200, code(40700), sdk.Verdict{Class: sdk.Retry, Reason: "tiktok_code_40700"}},
		{200, code(40001), sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_40001"}},
		{200, code(40002), sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_40002", Split: true}},
		{200, code(40105), sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_40105"}},
		{429, code(40100), sdk.Verdict{Class: sdk.Retry, Reason: "http_429"}},
		{500, nil, sdk.Verdict{Class: sdk.Retry, Reason: "http_500"}},
		{400, []byte("nope"), sdk.Verdict{Class: sdk.Permanent, Reason: "http_400", Split: true}},
		{200, []byte("not json"), sdk.Verdict{Class: sdk.Delivered}},
	} {
		require.Equal(t, tc.want, a.Classify(tc.status, nil, tc.body, nil), "%d %s", tc.status, tc.body)
	}
}

func TestAgainstStandin(t *testing.T) {
	s := standin.New("tiktok")
	defer s.Close()
	d := testDest(s.URL)
	a := newAdapter(t, d)
	ctx := context.Background()
	batch := []*schemas.FilteredEvent{testEvent("e1", time.Now()), testEvent("e2", time.Now())}

	s.SetFailures(standin.Fault{Status: 429, RetryAfter: "4"}, standin.Fault{Status: 200, Body: `{"code":40100,"message":"rate"}`},
		standin.Fault{Status: 503})
	v, _ := sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_429", RetryAfter: 4 * time.Second}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "tiktok_code_40100"}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Retry, Reason: "http_503"}, v)

	s.RejectEvents("e2")
	v, _ = sinktest.Attempt(ctx, d, a, batch)
	require.Equal(t, sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_40002", Split: true}, v)
	v, _ = sinktest.Attempt(ctx, d, a, batch[:1])
	require.Equal(t, sdk.Delivered, v.Class)
	require.Equal(t, []string{"e1"}, s.EventIDs())
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

// limited_data_use follows the decision (a user of a US state opt-out jurisdiction) unless ldu is
// off; the config's limited_data_use sets it for everyone.
func TestLimitedDataUse(t *testing.T) {
	ldu := func(t *testing.T, d *policy.Destination, vendorConsent map[string]bool) bool {
		s := standin.New("tiktok")
		defer s.Close()
		d.Config["endpoint"] = s.URL
		ev := testEvent("e1", time.Now())
		ev.VendorConsent = vendorConsent
		_, err := sinktest.Attempt(context.Background(), d, newAdapter(t, d), []*schemas.FilteredEvent{ev})
		require.NoError(t, err)
		var b struct {
			Data []map[string]any `json:"data"`
		}
		require.NoError(t, json.Unmarshal(s.Requests()[0].Body, &b))
		require.Contains(t, b.Data[0], "limited_data_use", "always sent")
		return b.Data[0]["limited_data_use"].(bool)
	}
	us := map[string]bool{schemas.VendorLimitedDataUse: true}
	require.True(t, ldu(t, testDest(""), us))
	require.False(t, ldu(t, testDest(""), map[string]bool{schemas.VendorLimitedDataUse: false}))
	off := testDest("")
	off.LDU = policy.LDUOff
	require.False(t, ldu(t, off, us))
	always := testDest("")
	always.Config["limited_data_use"] = true
	require.True(t, ldu(t, always, map[string]bool{}))

	bad := testDest("")
	bad.Config["ldu"] = "sometimes"
	_, err := New(bad, env)
	require.EqualError(t, err, `destinations.tiktok.config.ldu: must be "auto" or "off", not "sometimes"`)
}
