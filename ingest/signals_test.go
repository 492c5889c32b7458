package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Real TC string (prebid/go-gdpr's test suite): purposes 1–8, vendors 8, 9, 32.
const tcOneToEight = "COyiBqdOyiBqdObAAAENAfCIAP8AAH-AAAAAB4AXQQgEAAAgoAAAAABAIYQUAAAAAAAAAAAAAAAIQIQCxIvkgQMAAAABgAIAAAAAAAAAAABAZAkAAA"

// One US-CA section written by IAB's encoder (@iabgpp/cmpapi 3.2.0; SaleOptOut 2).
const gppCA = "DBABBg~BQoAAABA.QA"

func TestNativeConsentSignals(t *testing.T) {
	tests := []struct {
		name, signals, err string // err "" means accepted
	}{
		{"all signals", `{"tcf":"` + tcOneToEight + `","gpp":"` + gppCA + `","gpp_sid":[8],"gcm":{"ad_storage":"granted","analytics_storage":"denied"},"cmp_ids":{"allowed":["C0001"],"denied":["C0004"]}}`, ""},
		{"null", `null`, ""},
		{"malformed tcf", `{"tcf":"COyiBqdOyiBq"}`, `field "consent_signals.tcf" `},
		{"tcf v1", `{"tcf":"BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"}`, `field "consent_signals.tcf" not a TCF v2 TC string`},
		{"tcf not a string", `{"tcf":5}`, `field "consent_signals.tcf" must be a string`},
		{"malformed gpp", `{"gpp":"DBABBgA~%%"}`, `field "consent_signals.gpp" `},
		{"bad gpp_sid", `{"gpp":"` + gppCA + `","gpp_sid":"8"}`, `field "consent_signals.gpp_sid" must be an array`},
		{"gpp_sid not a section id", `{"gpp":"` + gppCA + `","gpp_sid":[8,0]}`, `field "consent_signals.gpp_sid[1]" 0 is not a GPP section id`},
		{"truncated GPP section", `{"gpp":"DBABBg~BQoA"}`, `field "consent_signals.gpp" section usca: `},
		{"gcm unknown value", `{"gcm":{"ad_storage":"unknown"}}`, `field "consent_signals.gcm.ad_storage" must be "granted" or "denied"`},
		{"gcm unknown key", `{"gcm":{"ads":"granted"}}`, `field "consent_signals.gcm.ads" unknown consent mode key`},
		{"cmp_ids bad", `{"cmp_ids":{"allowed":"C0001"}}`, `field "consent_signals.cmp_ids" must be`},
		{"not an object", `"x"`, `field "consent_signals" must be an object`},
	}
	h := newHarness(t, "")
	var events []string
	for i, tt := range tests {
		events = append(events, `{"event":"a","user_id":"u","event_id":"e`+itoa(i)+`","consent_signals":`+tt.signals+`}`)
	}
	code, _, body := h.do("POST", "/v1/events", `{"batch":[`+strings.Join(events, ",")+`]}`, bearer(testKey))
	require.Equal(t, 202, code, body)
	var reply eventsReply
	require.NoError(t, json.Unmarshal([]byte(body), &reply))
	byIndex := map[int]string{}
	for _, r := range reply.Rejected {
		byIndex[r.Index] = r.Error
	}
	for i, tt := range tests {
		if tt.err == "" {
			assert.NotContains(t, byIndex, i, tt.name)
			continue
		}
		assert.Contains(t, byIndex[i], tt.err, tt.name)
	}
	got := h.events(2)
	assert.Nil(t, got["e1"].Signals)
	assert.Equal(t, &schemas.ConsentSignals{TCF: tcOneToEight, GPP: gppCA, GPPSID: []int{8},
		GCM:        map[string]string{"ad_storage": "granted", "analytics_storage": "denied"},
		CMPAllowed: []string{"C0001"}, CMPDenied: []string{"C0004"}, CMPHasDenied: true}, got["e0"].Signals)
}

func TestSegmentConsentSignals(t *testing.T) {
	t.Run("context.consent keys and consentManagement", func(t *testing.T) {
		h := newHarness(t, "")
		code, _, body := h.do("POST", "/v1/track", `{"event":"e","userId":"u","messageId":"m","context":{
			"consent":{"categoryPreferences":{"Analytics":true},"tcf":"`+tcOneToEight+`","gcm":{"ad_user_data":"denied"}},
			"consentManagement":{"provider":"oneTrust","allowedConsentIds":["C0001","C0002"],"resolutionStrategy":"or"}}}`, basic(testKey))
		require.Equal(t, 200, code, body)
		ev := h.events(1)["m"]
		assert.Equal(t, map[string]bool{"analytics": true}, ev.Consent)
		assert.Equal(t, &schemas.ConsentSignals{TCF: tcOneToEight, GPPSID: []int{}, GCM: map[string]string{"ad_user_data": "denied"},
			CMPAllowed: []string{"C0001", "C0002"}, CMPDenied: []string{}, CMPAny: true}, ev.Signals)
	})
	for _, tt := range []struct{ name, ctx, err string }{
		{"malformed tcf", `{"consent":{"tcf":"CO%%"}}`, `context.consent.tcf`},
		{"malformed gpp", `{"consent":{"gpp":"DBABBgA"}}`, `context.consent.gpp`},
		{"bad consentManagement", `{"consentManagement":{"deniedConsentIds":[1]}}`, `context.consentManagement.deniedConsentIds[0]`},
		{"bad resolutionStrategy", `{"consentManagement":{"resolutionStrategy":"any"}}`, `context.consentManagement.resolutionStrategy`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			code, _, body := h.do("POST", "/v1/track", `{"event":"e","userId":"u","messageId":"m","context":`+tt.ctx+`}`, basic(testKey))
			require.Equal(t, 400, code, body)
			assert.Contains(t, body, tt.err)
			assert.Zero(t, h.count())
		})
	}
}

// Google tags' gcs and gcd URL parameters: on the request (every event of it) or as members of
// consent_signals; merged into gcm, where a denial of a key by any of them wins.
func TestGoogleConsentParameters(t *testing.T) {
	h := newHarness(t, "")
	code, _, body := h.do("POST", "/v1/events?gcs=G101&gcd=11t1t1r1p5", `{"batch":[
		{"event":"a","user_id":"u","event_id":"q1"},
		{"event":"a","user_id":"u","event_id":"q2","consent_signals":{"gcm":{"ad_user_data":"denied"}}},
		{"event":"a","user_id":"u","event_id":"q3","consent_signals":{"gcd":"11l1l1q1n5"}},
		{"event":"a","user_id":"u","event_id":"q4","consent_signals":{"gcd":"11x1t1t1t5"}},
		{"event":"a","user_id":"u","event_id":"q5","consent_signals":{"gcs":"G2"}}]}`, bearer(testKey))
	require.Equal(t, 202, code, body)
	require.Contains(t, body, `"index":3`)
	require.Contains(t, body, `field \"consent_signals.gcd\" gcd \"11x1t1t1t5\": position 3: unknown consent letter 'x' for ad_storage`)
	require.Contains(t, body, `"index":4`)
	got := h.events(3)
	// gcs: ad_storage denied, analytics granted; gcd: ad_storage t (granted), analytics t,
	// ad_user_data r (granted by update), ad_personalization p (denied): gcs's denial of
	// ad_storage wins over gcd's grant.
	query := map[string]string{"ad_storage": "denied", "analytics_storage": "granted", "ad_user_data": "granted", "ad_personalization": "denied"}
	assert.Equal(t, query, got["q1"].Signals.GCM)
	assert.Equal(t, []int{}, got["q1"].Signals.GPPSID)
	q2 := map[string]string{"ad_storage": "denied", "analytics_storage": "granted", "ad_user_data": "denied", "ad_personalization": "denied"}
	assert.Equal(t, q2, got["q2"].Signals.GCM, "the event's own denial of ad_user_data beats the request's grant")
	// q3's own gcd: l/l not set, ad_user_data q (denied), ad_personalization n (granted); the
	// request's denial of ad_personalization still wins.
	q3 := map[string]string{"ad_storage": "denied", "analytics_storage": "granted", "ad_user_data": "denied", "ad_personalization": "denied"}
	assert.Equal(t, q3, got["q3"].Signals.GCM)

	for _, q := range []string{"gcs=G1x1", "gcd=11"} {
		code, _, body = h.do("POST", "/v1/events?"+q, `{"event":"a","user_id":"u"}`, bearer(testKey))
		require.Equal(t, 400, code, body)
		require.Contains(t, body, "query parameter "+q[:3])
	}
}
