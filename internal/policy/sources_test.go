package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const withSources = good + `consent_sources:
  tcf:
    analytics: [1, 8, 9]
    marketing: [1, 2, 3, 4, 7]
  gcm:
    analytics: [analytics_storage]
    marketing: [ad_storage, ad_user_data]
  cmp_ids:
    C0002: analytics
    C0004: marketing
    C0005: marketing
`

func TestParseConsentSources(t *testing.T) {
	src := strings.Replace(withSources, "    sale: true\n", "    sale: true\n    tcf_vendor_id: 89\n", 1)
	p, err := Parse("p.yaml", []byte(src))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 7}, p.ConsentSources.TCF["marketing"])
	require.Equal(t, []string{"ad_storage", "ad_user_data"}, p.ConsentSources.GCM["marketing"])
	require.Equal(t, []string{"C0004", "C0005"}, p.ConsentSources.CMPIDsOf("marketing"))
	require.Equal(t, 89, p.Destinations["meta"].TCFVendorID)

	p, err = Parse("p.yaml", []byte(strings.Replace(withSources, "    sale: true\n", "    sale: true\n    ldu: auto\n", 1)))
	require.NoError(t, err)
	require.Equal(t, LDUAuto, p.Destinations["meta"].LDU)
}

func TestConsentSourcesErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"analytics: [1, 8, 9]", "analytics: [1, 12, 9]", `p.yaml:19: consent_sources.tcf.analytics[1]: unknown TCF purpose 12`},
		{"analytics: [1, 8, 9]", "analytics: [0]", `consent_sources.tcf.analytics[0]: unknown TCF purpose 0`},
		{"analytics: [1, 8, 9]", "analytics: []", `p.yaml:19: consent_sources.tcf.analytics: is mapped to no TCF purpose`},
		{"analytics: [1, 8, 9]", "fun: [1]", `consent_sources.tcf.fun: unknown purpose "fun"`},
		{"[ad_storage, ad_user_data]", "[ad_storage, ad_data]", `p.yaml:23: consent_sources.gcm.marketing[1]: unknown Consent Mode key "ad_data"`},
		{"[ad_storage, ad_user_data]", "[]", `consent_sources.gcm.marketing: is mapped to no Consent Mode key`},
		{"C0002: analytics", `C0002: ""`, `p.yaml:25: consent_sources.cmp_ids.C0002: is mapped to no purpose`},
		{"C0002: analytics", "C0002: stats", `p.yaml:25: consent_sources.cmp_ids.C0002: unknown purpose "stats"`},
		{"    sale: true\n", "    sale: true\n    tcf_vendor_id: 70000\n", `p.yaml:11: destinations.meta.tcf_vendor_id: must be a TCF vendor id`},
		{"  gcm:\n", "  gmc:\n", `field gmc not found`},
		{"    sale: true\n", "    sale: true\n    ldu: always\n", `p.yaml:11: destinations.meta.ldu: must be "auto" or "off", not "always"`},
		{"    type: meta_capi\n    purpose: marketing\n    sale: true\n", "    type: webhook\n    purpose: marketing\n    sale: true\n    ldu: auto\n",
			`p.yaml:11: destinations.meta.ldu: only meta_capi and tiktok destinations have limited data use, not webhook`},
	} {
		_, err := Parse("p.yaml", []byte(strings.Replace(withSources, tc.from, tc.to, 1)))
		require.ErrorContains(t, err, tc.want, tc.to)
	}
}

func TestUSState(t *testing.T) {
	for j, want := range map[string]bool{"US-CA": true, "US-TX": true, "US": false, "US-": false, "EU": false, "default": false} {
		_, got := USState(j)
		require.Equal(t, want, got, j)
	}
	state, _ := USState("US-CA")
	require.Equal(t, "CA", state)
}
