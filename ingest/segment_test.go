package ingest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSegmentBatchMapping(t *testing.T) {
	h := newHarness(t, "")
	body := `{
	  "writeKey": "ignored-when-basic-auth-is-set",
	  "sentAt": "2026-11-23T10:00:10Z",
	  "context": {"library": {"name": "analytics-node", "version": "1.0"}, "locale": "de-DE"},
	  "batch": [
	    {"type": "track", "messageId": "m-track", "event": "Order Completed", "userId": "u-1", "anonymousId": "a-1",
	     "timestamp": "2026-11-23T10:00:00.000Z",
	     "properties": {"revenue": 149.0, "currency": "EUR", "items": [ {"sku": "x"} ]},
	     "context": {"page": {"url": "https://shop.example/checkout", "referrer": "https://ref.example/", "title": "Checkout", "path": "/checkout"},
	                 "userAgent": "Mozilla/5.0", "ip": "203.0.113.9", "locale": "en-US",
	                 "device": {"id": "dev-1"}, "os": {"name": "iOS"}, "traits": {"email": "ann@example.com"},
	                 "consent": {"categoryPreferences": {"Analytics": true, "Advertising": true, "SaleOfData": false, "Functional": true, "Unknown": "?"}}},
	     "integrations": {"All": true}},
	    {"type": "page", "messageId": "m-page", "anonymousId": "a-2", "name": "Home", "category": "Docs",
	     "properties": {"url": "https://shop.example/", "title": "Shop"},
	     "originalTimestamp": "2026-11-23T10:00:05Z",
	     "context": {"consent": {"categoryPreferences": {"Advertising": true, "SaleOfData": true}}}},
	    {"type": "identify", "messageId": "m-identify", "userId": "u-3", "traits": {"email": "Ann@Example.com", "plan": "pro"},
	     "context": {"consent": {"categoryPreferences": {"Unknown": true}}}},
	    {"type": "screen", "messageId": "m-screen", "userId": "u-4", "name": "Settings"},
	    {"type": "alias", "messageId": "m-alias", "userId": "u-5", "previousId": "a-5"},
	    {"type": "track", "messageId": "m-noname", "userId": "u-6"},
	    {"type": "track", "messageId": "m-badconsent", "event": "x", "userId": "u-7",
	     "context": {"consent": {"categoryPreferences": {"Analytics": "yes"}}}},
	    {"type": "track", "messageId": "m-nouser", "event": "x"},
	    {"messageId": "m-notype", "event": "x", "userId": "u-8"}
	  ]
	}`
	code, _, reply := h.do("POST", "/v1/batch", body, basic(testKey))
	require.Equal(t, 200, code, reply)
	var r segmentReply
	require.NoError(t, json.Unmarshal([]byte(reply), &r))
	assert.True(t, r.Success)
	errs := map[int]string{}
	for _, rej := range r.Rejected {
		errs[rej.Index] = rej.Error
	}
	assert.Equal(t, map[int]string{
		4: `event 4: field "type" "alias" is not supported (track, page, screen, identify)`,
		5: `event 5: field "event" is required for a track call`,
		6: `event 6: field "context.consent.categoryPreferences.Analytics" must be true or false`,
		7: `event 7: field "userId" or "anonymousId" is required`,
		8: `event 8: field "type" is required`,
	}, errs)

	evs := h.events(4)
	track := evs["m-track"]
	assert.Equal(t, "Order Completed", track.Event)
	assert.Equal(t, "u-1", track.UserID)
	assert.Equal(t, "a-1", track.AnonymousID)
	assert.Equal(t, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixMilli(), track.TimestampMs)
	assert.Equal(t, map[string]string{
		"page_url": `"https://shop.example/checkout"`, "referrer": `"https://ref.example/"`, "page_title": `"Checkout"`,
		"user_agent": `"Mozilla/5.0"`, "ip": `"203.0.113.9"`, "locale": `"en-US"`,
		"library": `{"name":"analytics-node","version":"1.0"}`,
	}, track.Context, "only mappable context fields, message context over batch context; device, os, traits dropped")
	assert.Equal(t, map[string]string{"revenue": `149.0`, "currency": `"EUR"`, "items": `[{"sku":"x"}]`}, track.Properties)
	assert.Equal(t, map[string]bool{"analytics": true, "marketing": false, "necessary": true}, track.Consent,
		"marketing needs every present category mapping to it to be true; unknown categories ignored")

	page := evs["m-page"]
	assert.Equal(t, "page", page.Event)
	assert.Equal(t, "a-2", page.UserKey())
	assert.Equal(t, map[string]string{"url": `"https://shop.example/"`, "title": `"Shop"`, "name": `"Home"`, "category": `"Docs"`}, page.Properties)
	assert.Equal(t, `"https://shop.example/"`, page.Context["page_url"], "page url from properties when context lacks it")
	assert.Equal(t, `"Shop"`, page.Context["page_title"])
	assert.Equal(t, `"de-DE"`, page.Context["locale"], "batch context applies")
	assert.Equal(t, map[string]bool{"marketing": true}, page.Consent)
	received := time.UnixMilli(page.ReceivedMs)
	assert.Equal(t, received.Add(-5*time.Second).UnixMilli(), page.TimestampMs, "originalTimestamp corrected by sentAt")

	identify := evs["m-identify"]
	assert.Equal(t, "identify", identify.Event)
	assert.Equal(t, map[string]string{"email": `"Ann@Example.com"`, "plan": `"pro"`}, identify.Properties)
	assert.Nil(t, identify.Consent, "only unknown categories: no choice")

	screen := evs["m-screen"]
	assert.Equal(t, "screen", screen.Event)
	assert.Equal(t, `"Settings"`, screen.Properties["name"])
	assert.Nil(t, screen.Consent, "no categoryPreferences: no choice")
}

func TestSegmentEndpoints(t *testing.T) {
	tests := []struct {
		name, path, body string
		headers          hdr
		want             int
		event            string
	}{
		{"track", "/v1/track", `{"event":"Signed Up","userId":"u","messageId":"m"}`, nil, 200, "Signed Up"},
		{"track type from endpoint", "/v1/track", `{"type":"page","event":"Signed Up","userId":"u","messageId":"m"}`, nil, 200, "Signed Up"},
		{"page", "/v1/page", `{"name":"Home","anonymousId":"a","messageId":"m"}`, nil, 200, "page"},
		{"identify", "/v1/identify", `{"userId":"u","traits":{"plan":"pro"},"messageId":"m"}`, nil, 200, "identify"},
		{"track without event", "/v1/track", `{"userId":"u"}`, nil, 400, ""},
		{"batch with one bad", "/v1/batch", `{"batch":[{"type":"track","userId":"u"},{"type":"track","event":"e","userId":"u","messageId":"m"}]}`, nil, 200, "e"},
		{"batch all bad", "/v1/batch", `{"batch":[{"type":"track","userId":"u"}]}`, nil, 400, ""},
		{"batch required", "/v1/batch", `{"type":"track","event":"e","userId":"u"}`, nil, 400, ""},
		{"malformed", "/v1/batch", `{"batch":[`, nil, 400, ""},
		{"bad batch context", "/v1/batch", `{"context":5,"batch":[{"type":"track","event":"e","userId":"u"}]}`, nil, 400, ""},
		{"GPC header", "/v1/track", `{"event":"e","userId":"u","messageId":"m"}`, hdr{"Sec-GPC": "1"}, 200, "e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			hd := basic(testKey)
			for k, v := range tt.headers {
				hd = hd.with(k, v)
			}
			code, _, body := h.do("POST", tt.path, tt.body, hd)
			require.Equal(t, tt.want, code, body)
			if code != 200 {
				assert.Zero(t, h.count())
				assert.NotContains(t, body, `"success":true`)
				return
			}
			var r segmentReply
			require.NoError(t, json.Unmarshal([]byte(body), &r))
			assert.True(t, r.Success)
			ev := h.events(1)["m"]
			assert.Equal(t, tt.event, ev.Event)
			assert.Equal(t, tt.headers["Sec-GPC"] == "1", ev.GPC)
		})
	}
}

func TestSegmentConsent(t *testing.T) {
	d := &decoder{categories: map[string]string{"Analytics": "analytics", "Advertising": "marketing", "SaleOfData": "marketing"}}
	tests := []struct {
		name, prefs string
		want        map[string]bool
		err         string
	}{
		{"absent", ``, nil, ""},
		{"null", `null`, nil, ""},
		{"empty", `{}`, nil, ""},
		{"unknown only", `{"Other":true}`, nil, ""},
		{"unknown non-bool ignored", `{"Other":"x","Analytics":true}`, map[string]bool{"analytics": true}, ""},
		{"granted", `{"Analytics":true}`, map[string]bool{"analytics": true}, ""},
		{"denied", `{"Analytics":false}`, map[string]bool{"analytics": false}, ""},
		{"all of a purpose true", `{"Advertising":true,"SaleOfData":true}`, map[string]bool{"marketing": true}, ""},
		{"one of a purpose false", `{"Advertising":true,"SaleOfData":false}`, map[string]bool{"marketing": false}, ""},
		{"false first", `{"SaleOfData":false,"Advertising":true}`, map[string]bool{"marketing": false}, ""},
		{"only present ones count", `{"Advertising":true}`, map[string]bool{"marketing": true}, ""},
		{"case matters", `{"analytics":true}`, nil, ""},
		{"not bool", `{"Analytics":1}`, nil, "must be true or false"},
		{"not object", `[true]`, nil, "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.segmentConsent([]byte(tt.prefs))
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
