package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const good = `version: "v1"
purposes: [necessary, analytics, marketing]
jurisdictions:
  EU: {model: opt_in}
  US-CA: {model: opt_out}
destinations:
  meta:
    type: meta_capi
    purpose: marketing
    sale: true
    fields: [context.page_url, properties.email]
    hash: [properties.email]
sensitive:
  - name: health
    field: context.page_url
    pattern: "(?i)/health"
`

func TestParseGood(t *testing.T) {
	p, err := Parse("p.yaml", []byte(good))
	require.NoError(t, err)
	require.Equal(t, []string{"meta"}, p.Names)
	require.True(t, p.Destinations["meta"].Hashed("properties.email"))
	require.Equal(t, OptOut, p.Model("US-CA"))
	require.Equal(t, OptIn, p.Model("BR"), "no default jurisdiction: opt_in, the safe choice")
	require.True(t, p.Sensitive[0].Match("https://x/HEALTH/a"))
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"type: meta_capi", "type: myspace", `p.yaml:8: destinations.meta.type: unknown destination type "myspace"`},
		{"purpose: marketing", "purpose: fun", `p.yaml:9: destinations.meta.purpose: unknown purpose "fun"`},
		{"[context.page_url, properties.email]", "[context.page_url, properties.email, cookies.id]", `destinations.meta.fields: unknown field path "cookies.id"`},
		{"hash: [properties.email]", "hash: [properties.phone]", `destinations.meta.hash: "properties.phone" is not one of the destination's fields`},
		{`"(?i)/health"`, `"(?i)/(health"`, `p.yaml:16: sensitive[0].pattern: bad regular expression`},
		{"{model: opt_out}", "{model: maybe}", `jurisdictions.US-CA.model: must be opt_in or opt_out`},
		{"sale: true", "sael: true", `line 10: field sael not found`},
		{`version: "v1"`, `version: ""`, `version: is required`},
	} {
		_, err := Parse("p.yaml", []byte(strings.Replace(good, tc.from, tc.to, 1)))
		require.ErrorContains(t, err, tc.want, tc.to)
		require.NotContains(t, err.Error(), "\n")
	}
}

func TestCheckFieldPath(t *testing.T) {
	for _, ok := range []string{"user_id", "anonymous_id", "context.ip", "properties.order_value"} {
		require.NoError(t, CheckFieldPath(ok))
	}
	for _, bad := range []string{"", "context", "context.cookie", "properties.", "properties.a.b", "traits.email"} {
		require.Error(t, CheckFieldPath(bad), bad)
	}
}
