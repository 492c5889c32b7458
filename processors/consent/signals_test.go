package consent

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Real TC strings from prebid/go-gdpr's test suite (written by CMPs; purposes and vendors checked
// in internal/signals).
const (
	// Purposes 1–10; vendors 1, 2, 8, 9, 32, 755, 756 among others.
	tcAll = "CPAavcCPAavcCAGABCFRBKCsAP_AAH_AAAqIHFNf_X_fb3_j-_59_9t0eY1f9_7_v-0zjgeds-8Nyd_X_L8X5mM7vB36pq4KuR4Eu3LBAQdlHOHcTUmw6IkVqTPsbk2Mr7NKJ7PEinMbe2dYGH9_n9XT_ZKY79_____7__-_____7_f__-__3_vp9V---wOJAIMBAUAgAEMAAQIFCIQAAQhiQAAAABBCIBQJIAEqgAWVwEdoIEACAxAQgQAgBBQgwCAAQAAJKAgBACwQCAAiAQAAgAEAIAAEIAILACQEAAAEAJCAAiACECAgiAAg5DAgIgCCAFABAAAuJDACAMooASBAPGQGAAKAAqACGAEwALgAjgBlgDUAHZAPsA_ACMAFLAK2AbwBMQCbAFogLYAYEAw8BkQDOQGeAM-EQHwAVABWAC4AIYAZAAywBqADZAHYAPwAgABGAClgFPANYAdUA-QCGwEOgIvASIAmwBOwCkQFyAMCAYSAw8Bk4DOQGfCQAYADgBzgN_CQTgAEAALgAoACoAGQAOAAeABAACIAFQAMIAaABqADyAIYAigBMgCqAKwAWAAuABvADmAHoAQ0AiACJgEsAS4AmgBSgC3AGGAMgAZcA1ADVAGyAO8AewA-IB9gH6AQAAjABQQClgFPAL8AYoA1gBtADcAG8AOIAegA-QCGwEOgIqAReAkQBMQCZQE2AJ2AUOApEBYoC2AFyALvAYEAwYBhIDDQGHgMiAZIAycBlwDOQGfANIAadA1gDWQoAEAYQaBIACoAKwAXABDADIAGWANQAbIA7AB-AEAAIKARgApYBT4C0ALSAawA3gB1QD5AIbAQ6Ai8BIgCbAE7AKRAXIAwIBhIDDwGMAMnAZyAzwBnwcAEAA4Bv4qA2ABQAFQAQwAmABcAEcAMsAagA7AB-AEYAKXAWgBaQDeAJBATEAmwBTYC2AFyAMCAYeAyIBnIDPAGfANyHQWQAFwAUABUADIAHAAQAAiABdADAAMYAaABqADwAH0AQwBFACZAFUAVgAsABcADEAGYAN4AcwA9ACGAERAJYAmABNACjAFKALEAW4AwwBkADKAGiANQAbIA3wB3gD2gH2AfoBGACVAFBAKeAWKAtAC0gFzALyAX4AxQBuADiQHTAdQA9ACGwEOgIiAReAkEBIgCbAE7AKHAU0AqwBYsC2ALZAXAAuQBdoC7wGEgMNAYeAxIBjADHgGSAMnAZUAywBlwDOQGfANEgaQBpIDSwGnANYAbGPABAIqAb-QgZgALAAoABkAEQALgAYgBDACYAFUALgAYgAzABvAD0AI4AWIAygBqADfAHfAPsA_ACMAFBAKGAU-AtAC0gF-AMUAdQA9ACQQEiAJsAU0AsUBaMC2ALaAXAAuQBdoDDwGJAMiAZOAzkBngDPgGiANJAaWA4AlAyAAQAAsACgAGQAOAAigBgAGIAPAAiABMACqAFwAMQAZgA2gCGgEQARIAowBSgC3AGEAMoAaoA2QB3gD8AIwAU-AtAC0gGKANwAcQA6gCHQEXgJEATYAsUBbAC7QGHgMiAZOAywBnIDPAGfANIAawA4AmACARUA38pBBAAXABQAFQAMgAcABAACKAGAAYwA0ADUAHkAQwBFACYAFIAKoAWAAuABiADMAHMAQwAiABRgClAFiALcAZQA0QBqgDZAHfAPsA_ACMAFBAKGAVsAuYBeQDaAG4APQAh0BF4CRAE2AJ2AUOApoBWwCxQFsALgAXIAu0BhoDDwGMAMiAZIAycBlwDOQGeAM-gaQBpMDWANZAbGVABAA-Ab-A.YAAAAAAAAAAA"
	// Purposes 1–8; vendors 8, 9, 32 (not 755 nor 756).
	tcOneToEight = "COyiBqdOyiBqdObAAAENAfCIAP8AAH-AAAAAB4AXQQgEAAAgoAAAAABAIYQUAAAAAAAAAAAAAAAIQIQCxIvkgQMAAAABgAIAAAAAAAAAAABAZAkAAA"
	// No purpose, no vendor.
	tcNothing = "COyiCPlOyiCPlKxMIAENAfCAAAAAAAAAAAAAAAAAAAAA"
)

const sourcesYAML = `consent_sources:
  tcf:
    analytics: [1, 8, 9]
    marketing: [1, 2, 3, 4, 7]
  gcm:
    analytics: [analytics_storage]
    marketing: [ad_storage, ad_user_data]
  cmp_ids:
    C0002: analytics
    C0004: marketing
`

// US-CA GPP sections written by IAB's encoder (@iabgpp/cmpapi 3.2.0: SaleOptOutNotice 1,
// SharingOptOut 2, with the GPC segment): SaleOptOut 1 and 2.
const (
	optedOutCA    = "DBABBg~BQYAAABA.QA"
	notOptedOutCA = "DBABBg~BQoAAABA.QA"
)

func TestDecideSignals(t *testing.T) {
	// meta needs vendor 756's consent in a TC string.
	pol := loadPolicy(t, "    sale: true\n    fields: [context.page_url, context.user_agent", "    sale: true\n    tcf_vendor_id: 756\n    fields: [context.page_url, context.user_agent",
		"segment_categories:", sourcesYAML+"segment_categories:")
	require.Equal(t, 756, pol.Destinations["meta"].TCFVendorID)

	sig := func(s schemas.ConsentSignals) *schemas.ConsentSignals { return &s }
	tests := []struct {
		name, jurisdiction string
		consent            map[string]bool
		signals            *schemas.ConsentSignals
		st                 *State
		gpc                bool
		dest               string
		outcome, reason    string
		source             string
	}{
		{name: "TC grants purposes and vendor", signals: sig(schemas.ConsentSignals{TCF: tcAll}), dest: "meta", outcome: Forwarded, reason: ReasonConsented, source: "tcf"},
		{name: "TC grants purposes, not the vendor", signals: sig(schemas.ConsentSignals{TCF: tcOneToEight}), dest: "meta", outcome: Blocked, reason: ReasonNoConsent, source: "tcf"},
		{name: "TC purposes only for a destination without vendor id", signals: sig(schemas.ConsentSignals{TCF: tcOneToEight}), dest: "tiktok", outcome: Forwarded, reason: ReasonConsented, source: "tcf"},
		{name: "TC lacks purpose 9 for analytics", signals: sig(schemas.ConsentSignals{TCF: tcOneToEight}), dest: "ga4", outcome: Blocked, reason: ReasonNoConsent, source: "tcf"},
		{name: "TC refusal beats event true", consent: allTrue(), signals: sig(schemas.ConsentSignals{TCF: tcNothing}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: "event,tcf"},
		{name: "TC refusal under opt_out", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{TCF: tcNothing}), dest: "tiktok", outcome: Blocked, reason: ReasonOptedOut, source: "tcf"},
		{name: "event false beats TC grant", consent: map[string]bool{"marketing": false}, signals: sig(schemas.ConsentSignals{TCF: tcAll}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: "event,tcf"},
		{name: "Google 755: purposes 1 and 7 and vendor 755", signals: sig(schemas.ConsentSignals{TCF: tcAll}), dest: "gads", outcome: Forwarded, reason: ReasonConsented, source: "tcf"},
		{name: "Google 755: no vendor 755 consent", signals: sig(schemas.ConsentSignals{TCF: tcOneToEight}), dest: "gads", outcome: Blocked, reason: ReasonNoConsent, source: "tcf"},
		{name: "Google with Consent Mode uses it, not 755", signals: sig(schemas.ConsentSignals{TCF: tcAll, GCM: map[string]string{"ad_storage": "granted", "ad_user_data": "denied"}}), dest: "gads", outcome: Blocked, reason: ReasonNoConsent, source: "gcm,tcf"},
		{name: "GCM granted", signals: sig(schemas.ConsentSignals{GCM: map[string]string{"ad_storage": "granted", "ad_user_data": "granted"}}), dest: "tiktok", outcome: Forwarded, reason: ReasonConsented, source: "gcm"},
		{name: "GCM one key denied beats event true", consent: allTrue(), signals: sig(schemas.ConsentSignals{GCM: map[string]string{"ad_storage": "granted", "ad_user_data": "denied"}}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: "event,gcm"},
		{name: "GCM key missing is no choice (opt_in)", signals: sig(schemas.ConsentSignals{GCM: map[string]string{"ad_storage": "granted"}}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: ""},
		{name: "GCM key missing is no choice (opt_out)", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GCM: map[string]string{"ad_storage": "granted"}}), dest: "tiktok", outcome: Forwarded, reason: ReasonConsented, source: ""},
		{name: "cmp_ids allowed without denied list denies the rest", signals: sig(schemas.ConsentSignals{CMPAllowed: []string{"C0002"}}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: "cmp_ids"},
		{name: "cmp_ids allowed grants its purpose", signals: sig(schemas.ConsentSignals{CMPAllowed: []string{"C0002"}}), dest: "ga4", outcome: Forwarded, reason: ReasonConsented, source: "cmp_ids"},
		{name: "GPP sale opt-out blocks a sale destination", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: optedOutCA, GPPSID: []int{8}}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, source: "gpp"},
		{name: "GPP sale opt-out spares a non-sale destination", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: optedOutCA, GPPSID: []int{8}}), dest: "gads", outcome: Forwarded, reason: ReasonConsented, source: ""},
		{name: "GPP without opt-out", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: notOptedOutCA, GPPSID: []int{8}}), dest: "meta", outcome: Forwarded, reason: ReasonConsented, source: "gpp"},
		// IAB's encoder (@iabgpp/cmpapi 3.2.0): SaleOptOut 1 in usmn (23), usmd (24), usri (27).
		{name: "GPP sale opt-out in usmn blocks a sale destination", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: "DBABIYA~BEQAAAQA.QA", GPPSID: []int{23}}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, source: "gpp"},
		{name: "GPP sale opt-out in usmd blocks a sale destination", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: "DBABEYA~BQRA.QA"}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, source: "gpp"},
		{name: "GPP sale opt-out in usri blocks a sale destination", jurisdiction: "US-CA", signals: sig(schemas.ConsentSignals{GPP: "DBABSYA~BQRA.AAA", GPPSID: []int{27}}), dest: "meta", outcome: Blocked, reason: ReasonOptedOut, source: "gpp"},
		{name: "GPC keeps its reason next to GPP", jurisdiction: "US-CA", gpc: true, signals: sig(schemas.ConsentSignals{GPP: optedOutCA}), dest: "meta", outcome: Blocked, reason: ReasonGPC, source: "gpc,gpp"},
		{name: "recorded refusal beats TC grant", st: &State{Consent: map[string]bool{"marketing": false}}, signals: sig(schemas.ConsentSignals{TCF: tcAll}), dest: "tiktok", outcome: Blocked, reason: ReasonWithdrawn, source: "consent_api,tcf"},
		{name: "necessary has no source", signals: sig(schemas.ConsentSignals{TCF: tcNothing}), dest: "ops", outcome: Forwarded, reason: ReasonNecessary, source: ""},
		{name: "no signal, no consent", dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: ""},
		{name: "unreadable TC string (replayed record) is a refusal", signals: sig(schemas.ConsentSignals{TCF: "COyiBq"}), dest: "tiktok", outcome: Blocked, reason: ReasonNoConsent, source: "tcf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := baseEvent()
			ev.Jurisdiction = tt.jurisdiction
			if ev.Jurisdiction == "" {
				ev.Jurisdiction = "EU"
			}
			ev.Consent, ev.Signals, ev.GPC = tt.consent, tt.signals, tt.gpc
			o := outcomeFor(t, Decide(ev, tt.st, pol, decidedAt, ""), tt.dest)
			require.Equal(t, tt.outcome, o.Decision.Outcome)
			require.Equal(t, tt.reason, o.Decision.Reason)
			require.Equal(t, tt.source, o.Decision.ConsentSource)
			wantProof := ""
			if tt.signals != nil {
				wantProof = signals.Proof(tt.signals.TCF, tt.signals.GPP)
			}
			require.Equal(t, wantProof, o.Decision.ConsentProof)
		})
	}
}

func TestExplainShowsSignalRules(t *testing.T) {
	pol := loadPolicy(t, "segment_categories:", sourcesYAML+"segment_categories:")
	ev := baseEvent()
	ev.Consent = allTrue()
	ev.Signals = &schemas.ConsentSignals{TCF: tcNothing}
	require.Contains(t, RuleNames(), "signals")
	require.Contains(t, RuleNames(), "gpp")
	for _, e := range Explain(ev, nil, pol, decidedAt) {
		if e.Destination != "tiktok" {
			continue
		}
		var decided string
		for _, s := range e.Rules {
			if s.Applies {
				decided = s.Rule
				break
			}
		}
		require.Equal(t, "signals", decided)
		require.Equal(t, ReasonNoConsent, e.Reason)
		return
	}
	t.Fatal("no tiktok explanation")
}

// The consent map handed to sinks (GA4 and Google Ads derive their vendor consent fields from it)
// carries the CMP signals: a TC string refusing marketing's purposes turns marketing off there
// even when the event's own consent says true.
func TestFilteredConsentCarriesSignals(t *testing.T) {
	pol := loadPolicy(t, "segment_categories:", sourcesYAML+"segment_categories:")
	ev := baseEvent()
	ev.Consent = allTrue()
	ev.Signals = &schemas.ConsentSignals{TCF: tcNothing, GCM: map[string]string{"analytics_storage": "granted"}}
	o := outcomeFor(t, Decide(ev, nil, pol, decidedAt, ""), "ops")
	require.NotNil(t, o.Filtered)
	require.Equal(t, map[string]bool{"necessary": true, "analytics": false, "marketing": false}, o.Filtered.Consent)

	ev.Signals = &schemas.ConsentSignals{TCF: tcAll}
	o = outcomeFor(t, Decide(ev, nil, pol, decidedAt, ""), "ops")
	require.Equal(t, map[string]bool{"necessary": true, "analytics": true, "marketing": true}, o.Filtered.Consent,
		"tcAll consents to purposes 1–10: both mappings hold")
}
