package consent

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		destType, path, raw, want string
	}{
		// Email: trim + lower everywhere; Gmail canonicalisation for Google Ads only.
		{"meta_capi", "properties.email", " Ann@Example.com ", "ann@example.com"},
		{"meta_capi", "properties.email", "John.Doe+x@gmail.com", "john.doe+x@gmail.com"},
		{"tiktok", "properties.email", " Ann@Example.com ", "ann@example.com"},
		{"ga4", "properties.email", "John.Doe+x@gmail.com", "john.doe+x@gmail.com"},
		{"webhook", "properties.user_email", " A@B.C ", "a@b.c"},
		{"google_ads", "properties.email", "John.Doe+x@gmail.com", "johndoe@gmail.com"},
		{"google_ads", "properties.email", " J.D@GoogleMail.com", "jd@googlemail.com"},
		{"google_ads", "properties.email", "john.doe+x@example.com", "john.doe+x@example.com"},
		{"google_ads", "properties.email", "jo hn@example.com", "john@example.com"},
		{"google_ads", "properties.email", "no-at-sign.gmail.com", "no-at-sign.gmail.com"},
		{"meta_capi", "properties.em", "X@Y.Z", "x@y.z"},
		// Phone: Meta digits without '+'; everyone else E.164 with '+'.
		{"meta_capi", "properties.phone", "+1 (650) 555-1212", "16505551212"},
		{"meta_capi", "properties.phone", "(650)555-1212", "6505551212"},
		{"meta_capi", "properties.phone", "00 1 650 555 1212", "16505551212"},
		{"tiktok", "properties.phone", "+1 (650) 555-1212", "+16505551212"},
		{"google_ads", "properties.phone_number", "+1 650.555.1212", "+16505551212"},
		{"ga4", "properties.phone", "001-650-555-1212", "+16505551212"},
		{"webhook", "properties.ph", "+44 20 7946 0958", "+442079460958"},
		{"tiktok", "properties.phone", "n/a", ""},
		{"meta_capi", "properties.phone", "", ""},
		// Names, city, zip, country, default.
		{"meta_capi", "properties.fn", " Mary-Ann ", "maryann"},
		{"meta_capi", "properties.last_name", "O'Neil Smith", "oneilsmith"},
		{"meta_capi", "properties.first_name", "José", "josé"},
		{"meta_capi", "properties.ln", "DU PONT.", "dupont"},
		{"meta_capi", "properties.ct", "New York", "newyork"},
		{"meta_capi", "properties.city", " San  Francisco ", "sanfrancisco"},
		{"meta_capi", "properties.billing_city", "Le Mans", "lemans"},
		{"meta_capi", "properties.ethnicity", " Not Stated ", "not stated"},
		{"meta_capi", "properties.zp", "SW1A 1AA", "sw1a1aa"},
		{"meta_capi", "properties.postal_code", " 94 107 ", "94107"},
		{"meta_capi", "properties.zip", "94107", "94107"},
		{"meta_capi", "properties.country", " US ", "us"},
		{"meta_capi", "user_id", " U-42 ", "u-42"},
		{"meta_capi", "properties.external_id", "ABC", "abc"},
		{"tiktok", "PROPERTIES.EMAIL", "A@B.C", "a@b.c"},
	}
	for _, tc := range tests {
		t.Run(tc.destType+"/"+tc.path+"/"+tc.raw, func(t *testing.T) {
			require.Equal(t, tc.want, Normalize(tc.destType, tc.path, tc.raw))
		})
	}
}

func TestHashField(t *testing.T) {
	const hexUpper = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
	tests := []struct {
		name, destType, path, jsonText, want string
	}{
		{"meta email", "meta_capi", "properties.email", `" Ann@Example.com "`, sha("ann@example.com")},
		{"tiktok email", "tiktok", "properties.email", `" Ann@Example.com "`, sha("ann@example.com")},
		{"ga4 email", "ga4", "properties.email", `" Ann@Example.com "`, sha("ann@example.com")},
		{"meta keeps gmail dots", "meta_capi", "properties.email", `"John.Doe+x@gmail.com"`, sha("john.doe+x@gmail.com")},
		{"google_ads gmail", "google_ads", "properties.email", `"John.Doe+x@gmail.com"`, sha("johndoe@gmail.com")},
		{"meta phone", "meta_capi", "properties.phone", `"+1 (650) 555-1212"`, sha("16505551212")},
		{"tiktok phone", "tiktok", "properties.phone", `"+1 (650) 555-1212"`, sha("+16505551212")},
		{"google_ads phone", "google_ads", "properties.phone", `"+1 (650) 555-1212"`, sha("+16505551212")},
		{"webhook phone", "webhook", "properties.phone", `"+1 (650) 555-1212"`, sha("+16505551212")},
		{"phone as a JSON number", "meta_capi", "properties.phone", `16505551212`, sha("16505551212")},
		{"number hashes its text", "webhook", "properties.order_value", `149.0`, sha("149.0")},
		{"escaped JSON string is decoded", "meta_capi", "properties.email", `"\u0041nn@example.com"`, sha("ann@example.com")},
		{"non-ASCII JSON string", "meta_capi", "properties.fn", `"Zoë"`, sha("zoë")},
		{"invalid JSON is the raw string", "meta_capi", "properties.email", `Ann@Example.com`, sha("ann@example.com")},
		{"unterminated JSON string is raw", "meta_capi", "properties.email", `"Ann@Example.com`, sha(`"ann@example.com`)},
		{"identifier", "tiktok", "user_id", `"u-42"`, sha("u-42")},
		{"already hashed passes through lower-cased", "meta_capi", "properties.email", `"` + hexUpper + `"`, `"` + strings.ToLower(hexUpper) + `"`},
		{"already hashed with spaces", "tiktok", "properties.phone", `" ` + hexUpper + ` "`, `"` + strings.ToLower(hexUpper) + `"`},
		{"already hashed unquoted", "meta_capi", "properties.email", hexUpper, `"` + strings.ToLower(hexUpper) + `"`},
		{"63 hex chars is hashed", "meta_capi", "properties.email", `"` + hexUpper[:63] + `"`, sha(strings.ToLower(hexUpper[:63]))},
		{"empty", "meta_capi", "properties.email", `""`, sha("")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := HashField(tc.destType, tc.path, tc.jsonText)
			require.Equal(t, tc.want, got)
			require.True(t, isHashJSON(got))
		})
	}
}

// isHashJSON reports whether s is a JSON string of 64 lower-case hex characters.
func isHashJSON(s string) bool {
	if len(s) != 66 || s[0] != '"' || s[65] != '"' {
		return false
	}
	return isHex64(s[1:65]) && strings.ToLower(s) == s
}
