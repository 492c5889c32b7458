package consent

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// The vendor consent fields on a filtered event, over real TC strings and Consent Mode states.
// The "ops" destination (necessary) is forwarded whatever the choice, so the fields it carries
// show what every destination of the event would get.
func TestVendorConsent(t *testing.T) {
	pol := loadPolicy(t, "segment_categories:", sourcesYAML+"segment_categories:")
	type vc = map[string]bool
	want := func(adUserData, adPersonalization, ldu bool) vc {
		return vc{schemas.VendorAdUserData: adUserData, schemas.VendorAdPersonalization: adPersonalization,
			schemas.VendorLimitedDataUse: ldu}
	}
	tests := []struct {
		name, jurisdiction string
		consent            map[string]bool
		signals            *schemas.ConsentSignals
		gpc                bool
		want               vc
	}{
		{name: "marketing granted, no signal", consent: allTrue(), want: want(true, true, false)},
		{name: "marketing refused", consent: map[string]bool{"marketing": false}, want: want(false, false, false)},
		{name: "no choice under opt_in", want: want(false, false, false)},
		{name: "Consent Mode narrows per key", consent: allTrue(),
			signals: &schemas.ConsentSignals{GCM: map[string]string{"ad_user_data": "granted", "ad_personalization": "denied"}},
			want:    want(true, false, false)},
		{name: "a Consent Mode value other than granted grants nothing", consent: allTrue(),
			signals: &schemas.ConsentSignals{GCM: map[string]string{"ad_user_data": "granted", "ad_personalization": "unknown"}},
			want:    want(true, false, false)},
		{name: "Consent Mode cannot grant what marketing refuses", consent: map[string]bool{"marketing": false},
			signals: &schemas.ConsentSignals{GCM: map[string]string{"ad_user_data": "granted", "ad_personalization": "granted"}},
			want:    want(false, false, false)},
		{name: "TC string with vendor 755 and purposes 1-10", signals: &schemas.ConsentSignals{TCF: tcAll}, want: want(true, true, false)},
		{name: "TC string without vendor 755", consent: allTrue(), signals: &schemas.ConsentSignals{TCF: tcOneToEight},
			want: want(false, false, false)},
		{name: "a Consent Mode key sent beats the TC reading of it", signals: &schemas.ConsentSignals{TCF: tcAll,
			GCM: map[string]string{"ad_personalization": "denied"}}, want: want(true, false, false)},
		{name: "US state under opt_out, no choice", jurisdiction: "US-CA", want: want(true, true, true)},
		{name: "US state under opt_out with GPC", jurisdiction: "US-CA", gpc: true, want: want(false, false, true)},
		{name: "GPP sale opt-out", jurisdiction: "US-CA", signals: &schemas.ConsentSignals{GPP: optedOutCA, GPPSID: []int{8}},
			want: want(false, false, true)},
		{name: "GPP without opt-out", jurisdiction: "US-CA", signals: &schemas.ConsentSignals{GPP: notOptedOutCA, GPPSID: []int{8}},
			want: want(true, true, true)},
		{name: "unknown US state takes default's opt_in", jurisdiction: "US-ZZ", consent: allTrue(), want: want(true, true, false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := baseEvent()
			if tt.jurisdiction != "" {
				ev.Jurisdiction = tt.jurisdiction
			}
			ev.Consent, ev.Signals, ev.GPC = tt.consent, tt.signals, tt.gpc
			o := outcomeFor(t, Decide(ev, nil, pol, decidedAt, ""), "ops")
			require.NotNil(t, o.Filtered)
			require.Equal(t, tt.want, o.Filtered.VendorConsent)
		})
	}
}
