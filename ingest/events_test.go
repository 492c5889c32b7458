package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEventValidation: each bad event of a batch is rejected alone, by index, naming its field.
func TestEventValidation(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxValueDepth+1) + "1" + strings.Repeat("}", MaxValueDepth+1)
	okDeep := strings.Repeat(`[`, MaxValueDepth) + strings.Repeat("]", MaxValueDepth)
	tests := []struct {
		name, event, err string // err "" means accepted
	}{
		{"minimal", `{"event":"a","anonymous_id":"x"}`, ""},
		{"missing event", `{"user_id":"u"}`, `field "event" is required`},
		{"null event", `{"event":null,"user_id":"u"}`, `field "event" is required`},
		{"empty event", `{"event":"","user_id":"u"}`, `field "event" must not be empty`},
		{"event not a string", `{"event":5,"user_id":"u"}`, `field "event" must be a string`},
		{"event 200 chars", `{"event":"` + strings.Repeat("é", 200) + `","user_id":"u"}`, ""},
		{"event 201 chars", `{"event":"` + strings.Repeat("a", 201) + `","user_id":"u"}`, `field "event" is longer than 200 characters`},
		{"no user", `{"event":"a"}`, `field "user_id" or "anonymous_id" is required`},
		{"empty users", `{"event":"a","user_id":"","anonymous_id":null}`, `field "user_id" or "anonymous_id" is required`},
		{"user_id not a string", `{"event":"a","user_id":42}`, `field "user_id" must be a string`},
		{"user_id too long", `{"event":"a","user_id":"` + strings.Repeat("u", 257) + `"}`, `field "user_id" is longer than 256 characters`},
		{"anonymous_id too long", `{"event":"a","anonymous_id":"` + strings.Repeat("u", 257) + `"}`, `field "anonymous_id" is longer than 256`},
		{"bad timestamp", `{"event":"a","user_id":"u","timestamp":"yesterday"}`, `field "timestamp" must be an RFC 3339 time`},
		{"numeric timestamp", `{"event":"a","user_id":"u","timestamp":1700000000}`, `field "timestamp" must be a string`},
		{"event_id not a string", `{"event":"a","user_id":"u","event_id":{}}`, `field "event_id" must be a string`},
		{"consent not bool", `{"event":"a","user_id":"u","consent":{"analytics":"yes"}}`, `field "consent.analytics" must be true or false`},
		{"consent not object", `{"event":"a","user_id":"u","consent":true}`, `field "consent" must be an object`},
		{"jurisdiction not a string", `{"event":"a","user_id":"u","jurisdiction":1}`, `field "jurisdiction" must be a string`},
		{"gpc not bool", `{"event":"a","user_id":"u","gpc":"1"}`, `field "gpc" must be true or false`},
		{"context not object", `{"event":"a","user_id":"u","context":"x"}`, `field "context" must be an object`},
		{"properties array", `{"event":"a","user_id":"u","properties":[1]}`, `field "properties" must be an object`},
		{"properties too deep", `{"event":"a","user_id":"u","properties":{"p":` + deep + `}}`, `field "properties.p" nests deeper than 8 levels`},
		{"properties at max depth", `{"event":"a","user_id":"u","properties":{"p":` + okDeep + `}}`, ""},
		{"not an object", `"purchase"`, `must be a JSON object`},
		{"unknown fields ignored", `{"event":"a","user_id":"u","extra":{"x":1}}`, ""},
	}
	h := newHarness(t, "")
	var events []string
	for _, tt := range tests {
		events = append(events, tt.event)
	}
	code, _, body := h.do("POST", "/v1/events", `{"batch":[`+strings.Join(events, ",")+`]}`, bearer(testKey))
	require.Equal(t, 202, code, body)
	var reply eventsReply
	require.NoError(t, json.Unmarshal([]byte(body), &reply))
	byIndex := map[int]string{}
	for _, r := range reply.Rejected {
		byIndex[r.Index] = r.Error
	}
	accepted := 0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == "" {
				accepted++
				assert.NotContains(t, byIndex, i)
				return
			}
			require.Contains(t, byIndex, i)
			assert.True(t, strings.HasPrefix(byIndex[i], "event "+itoa(i)+": "), byIndex[i])
			assert.Contains(t, byIndex[i], tt.err)
		})
	}
	assert.Equal(t, accepted, reply.Accepted)
	assert.Len(t, reply.Rejected, len(tests)-accepted)
	h.events(accepted)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestAllRejected(t *testing.T) {
	h := newHarness(t, "")
	code, _, body := h.do("POST", "/v1/events", `{"batch":[{"event":"a"},{"user_id":"u"}]}`, bearer(testKey))
	require.Equal(t, 400, code, body)
	var reply eventsReply
	require.NoError(t, json.Unmarshal([]byte(body), &reply))
	assert.Zero(t, reply.Accepted)
	assert.Equal(t, []rejection{
		{0, `event 0: field "user_id" or "anonymous_id" is required`},
		{1, `event 1: field "event" is required`},
	}, reply.Rejected)

	code, _, body = h.do("POST", "/v1/events", `{"user_id":"u"}`, bearer(testKey))
	require.Equal(t, 400, code, body)
	assert.Contains(t, body, `"error":"event 0: field \"event\" is required"`)
	assert.Zero(t, h.count())
}

// TestRecordsOnRawTopic: accepted events land on the raw topic keyed by user, with the type
// header, and their values keep what the event carried, exactly.
func TestRecordsOnRawTopic(t *testing.T) {
	h := newHarness(t, "")
	before := time.Now().UnixMilli()
	body := `{"batch":[
	  {"event_id":"e-1","event":"purchase","timestamp":"2026-11-23T10:00:00.250+01:00","user_id":"u-42","anonymous_id":"a-7",
	   "consent":{"necessary":true,"analytics":true,"marketing":false},"jurisdiction":"EU",
	   "context":{"page_url":"https://shop.example/checkout","nested":{ "a" : [1, 2.50, "x y"] }},
	   "properties":{"order_value":149.0,"currency":"EUR","email":"Ann@Example.com ","esc":"caf\u00e9 \"q\"","none":null,"big":12345678901234567890}},
	  {"event":"page_view","anonymous_id":"a-9","consent":{}}
	]}`
	code, _, reply := h.do("POST", "/v1/events", body, bearer(testKey).with("User-Agent", "Mozilla/5.0 test").with("X-Forwarded-For", "203.0.113.9"))
	require.Equal(t, 202, code, reply)
	assert.JSONEq(t, `{"accepted":2,"rejected":[]}`, reply)
	after := time.Now().UnixMilli()

	evs := h.events(2)
	ev := evs["e-1"]
	assert.Equal(t, "purchase", ev.Event)
	assert.Equal(t, time.Date(2026, 11, 23, 9, 0, 0, 250e6, time.UTC).UnixMilli(), ev.TimestampMs)
	assert.True(t, ev.ReceivedMs >= before && ev.ReceivedMs <= after)
	assert.Equal(t, "u-42", ev.UserID)
	assert.Equal(t, "a-7", ev.AnonymousID)
	assert.Equal(t, map[string]bool{"necessary": true, "analytics": true, "marketing": false}, ev.Consent)
	assert.Equal(t, "EU", ev.Jurisdiction)
	assert.False(t, ev.GPC)
	assert.Equal(t, map[string]string{
		"page_url": `"https://shop.example/checkout"`,
		"nested":   `{"a":[1,2.50,"x y"]}`,
	}, ev.Context, "no user_agent or ip added from the request: data minimisation")
	assert.Equal(t, map[string]string{
		"order_value": `149.0`,
		"currency":    `"EUR"`,
		"email":       `"Ann@Example.com "`,
		"esc":         `"caf\u00e9 \"q\""`,
		"none":        `null`,
		"big":         `12345678901234567890`,
	}, ev.Properties)

	var second string
	for id := range evs {
		if id != "e-1" {
			second = id
		}
	}
	ev = evs[second]
	parsed, err := uuid.Parse(second)
	require.NoError(t, err, "a missing event_id is generated")
	assert.Equal(t, uuid.Version(4), parsed.Version())
	assert.Equal(t, ev.ReceivedMs, ev.TimestampMs, "a missing timestamp is the receive time")
	assert.Equal(t, "a-9", ev.UserKey())
	assert.NotNil(t, ev.Consent, "an empty consent object is a choice that grants nothing")
	assert.Empty(t, ev.Consent)
	assert.Empty(t, ev.Jurisdiction, "no jurisdiction: the processor uses default")
}

func TestNoConsentIsNil(t *testing.T) {
	h := newHarness(t, "")
	code, _, body := h.do("POST", "/v1/events", `{"event":"a","user_id":"u","event_id":"e","consent":null}`, bearer(testKey))
	require.Equal(t, 202, code, body)
	assert.Nil(t, h.events(1)["e"].Consent)
}

func TestGPC(t *testing.T) {
	tests := []struct {
		name  string
		value string
		body  string
		want  bool
	}{
		{"header 1", "1", batchOf(2, `{"event":"a","user_id":"u"}`), true},
		{"header with space", " 1 ", `{"event":"a","user_id":"u"}`, true},
		{"no header", "", batchOf(2, `{"event":"a","user_id":"u"}`), false},
		{"header 0", "0", `{"event":"a","user_id":"u"}`, false},
		{"event field", "", `{"event":"a","user_id":"u","gpc":true}`, true},
		{"event cannot clear header", "1", `{"event":"a","user_id":"u","gpc":false}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			hd := bearer(testKey)
			if tt.value != "" {
				hd = hd.with("Sec-GPC", tt.value)
			}
			code, _, body := h.do("POST", "/v1/events", tt.body, hd)
			require.Equal(t, 202, code, body)
			n := strings.Count(tt.body, `"event"`)
			for _, ev := range h.events(n) {
				assert.Equal(t, tt.want, ev.GPC)
			}
		})
	}
}

func TestJurisdiction(t *testing.T) {
	const headers = "  country_header: X-Country\n  region_header: X-Region\n"
	tests := []struct {
		name, config, event string
		headers             hdr
		want                string
	}{
		{"headers not configured are ignored", "", `{"event":"a","user_id":"u"}`, hdr{"X-Country": "DE", "CF-IPCountry": "DE"}, ""},
		{"country", headers, `{"event":"a","user_id":"u"}`, hdr{"X-Country": "de"}, "EU"},
		{"country and region", headers, `{"event":"a","user_id":"u"}`, hdr{"X-Country": "US", "X-Region": "CA"}, "US-CA"},
		{"region with country prefix", headers, `{"event":"a","user_id":"u"}`, hdr{"X-Country": "US", "X-Region": "US-CA"}, "US-CA"},
		{"region alone with prefix", "  region_header: X-Region\n", `{"event":"a","user_id":"u"}`, hdr{"X-Region": "US-CO"}, "US-CO"},
		{"region alone is not a country", "  region_header: X-Region\n", `{"event":"a","user_id":"u"}`, hdr{"X-Region": "DE"}, ""},
		{"region unmapped falls back to country", headers, `{"event":"a","user_id":"u"}`, hdr{"X-Country": "FR", "X-Region": "IDF"}, "EU"},
		{"unmapped country", headers, `{"event":"a","user_id":"u"}`, hdr{"X-Country": "BR"}, ""},
		{"no header sent", headers, `{"event":"a","user_id":"u"}`, nil, ""},
		{"event field wins", headers, `{"event":"a","user_id":"u","jurisdiction":"US-CA"}`, hdr{"X-Country": "DE"}, "US-CA"},
		{"empty event field does not win", headers, `{"event":"a","user_id":"u","jurisdiction":""}`, hdr{"X-Country": "DE"}, "EU"},
		{"custom table", headers + "  jurisdictions: {BR: LGPD}\n", `{"event":"a","user_id":"u"}`, hdr{"X-Country": "BR"}, "LGPD"},
		{"custom table replaces default", headers + "  jurisdictions: {BR: LGPD}\n", `{"event":"a","user_id":"u"}`, hdr{"X-Country": "DE"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.config)
			hd := bearer(testKey)
			for k, v := range tt.headers {
				hd = hd.with(k, v)
			}
			code, _, body := h.do("POST", "/v1/events", tt.event, hd)
			require.Equal(t, 202, code, body)
			for _, ev := range h.events(1) {
				assert.Equal(t, tt.want, ev.Jurisdiction)
			}
		})
	}
}
