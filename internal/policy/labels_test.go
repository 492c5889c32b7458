package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLabels(t *testing.T) {
	p, err := Parse("p.yaml", []byte(good+`labels:
  properties.plan: subscription plan
  context.page_url: address of the page you were on
`))
	require.NoError(t, err)
	require.Equal(t, "subscription plan", p.Label("properties.plan"), "the policy's own")
	require.Equal(t, "address of the page you were on", p.Label("context.page_url"), "the policy overrides a built-in label")
	require.Equal(t, "e-mail address", p.Label("properties.email"), "built in")
	require.Equal(t, "loyalty tier", p.Label("properties.loyalty_tier"), "derived from the name")
}

func TestLabelErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct{ labels, want string }{
		{"labels:\n  cookies.id: a cookie\n", `p.yaml:18: labels: unknown field path "cookies.id"`},
		{"labels:\n  properties.plan: \"  \"\n", `p.yaml:18: labels: "properties.plan": the label is empty`},
	} {
		_, err := Parse("p.yaml", []byte(good+tc.labels))
		require.ErrorContains(t, err, tc.want)
	}
}

func TestMaxEventAge(t *testing.T) {
	hook := strings.Replace(good, "    hash: [properties.email]\n", "    hash: [properties.email]\n  ops:\n    type: webhook\n    purpose: necessary\n    config: {url: \"http://x\", max_event_age: 36h}\n  ops2:\n    type: webhook\n    purpose: necessary\n", 1)
	p, err := Parse("p.yaml", []byte(hook))
	require.NoError(t, err)
	require.Equal(t, 36*time.Hour, p.Destinations["ops"].MaxEventAge())
	require.Equal(t, DefaultWebhookMaxEventAge, p.Destinations["ops2"].MaxEventAge(), "default: 7 days")
	require.Equal(t, 7*24*time.Hour, p.Destinations["meta"].MaxEventAge())
	for typ, want := range map[string]time.Duration{TypeGA4: 72 * time.Hour, TypeTikTok: 7 * 24 * time.Hour, TypeGoogleAds: 90 * 24 * time.Hour} {
		require.Equal(t, want, (&Destination{Type: typ}).MaxEventAge(), typ)
	}

	_, err = Parse("p.yaml", []byte(strings.Replace(hook, "max_event_age: 36h", "max_event_age: 7d", 1)))
	require.ErrorContains(t, err, `p.yaml:16: destinations.ops.config.max_event_age: must be a positive duration such as "168h", not 7d`)
	_, err = Parse("p.yaml", []byte(strings.Replace(good, "    hash: [properties.email]\n", "    hash: [properties.email]\n    config: {max_event_age: 1h}\n", 1)))
	require.ErrorContains(t, err, "destinations.meta.config.max_event_age: only a webhook destination sets it")
}
