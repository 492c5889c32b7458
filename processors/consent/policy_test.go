package consent

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// testPolicyYAML is deploy/demo/policy.yaml extended with a destination of every type, a
// non-sale marketing destination, a hashed identifier and a second sensitive rule on a
// properties field (matched by its decoded JSON string).
const testPolicyYAML = `
version: "2026-11-01"
purposes: [necessary, analytics, marketing]
jurisdictions:
  EU:      {model: opt_in}
  US-CA:   {model: opt_out}
  default: {model: opt_in}
destinations:
  ga4:
    type: ga4
    purpose: analytics
    fields: [context.page_url, properties.order_value, properties.currency, properties.session_id]
    config: {endpoint: "http://127.0.0.1:9101", measurement_id: "G-TEST", api_secret_env: GA4_API_SECRET, allow_private_network: true}
  meta:
    type: meta_capi
    purpose: marketing
    sale: true
    fields: [context.page_url, context.user_agent, properties.order_value, properties.currency, properties.email, properties.phone, properties.fbclid]
    hash: [properties.email, properties.phone]
    config: {endpoint: "http://127.0.0.1:9102", pixel_id: "123", access_token_env: META_TOKEN, allow_private_network: true}
  ops:
    type: webhook
    purpose: necessary
    fields: [context.page_url, properties.error]
    config: {url: "http://127.0.0.1:9103/hook", secret_env: OPS_HOOK_SECRET, allow_private_network: true}
  tiktok:
    type: tiktok
    purpose: marketing
    sale: true
    fields: [user_id, context.page_url, properties.email, properties.phone]
    hash: [user_id, properties.email, properties.phone]
    config: {endpoint: "http://127.0.0.1:9104", pixel_code: "C1", access_token_env: TIKTOK_TOKEN, allow_private_network: true}
  gads:
    type: google_ads
    purpose: marketing
    fields: [anonymous_id, properties.email, properties.phone, properties.gclid, properties.order_value]
    hash: [properties.email, properties.phone]
    config: {endpoint: "http://127.0.0.1:9105", customer_id: "1", allow_private_network: true}
segment_categories:
  Analytics: analytics
  Advertising: marketing
  Functional: necessary
sensitive:
  - name: health
    field: context.page_url
    pattern: "(?i)/(pharmacy|clinic|health|diagnos)"
  - name: adult
    field: properties.category
    pattern: "^adult$"
`

// loadPolicy parses testPolicyYAML after applying old→new replacements pairwise.
func loadPolicy(tb testing.TB, replacements ...string) *policy.Policy {
	tb.Helper()
	text := strings.NewReplacer(replacements...).Replace(testPolicyYAML)
	pol, err := policy.Parse("test-policy.yaml", []byte(text))
	require.NoError(tb, err)
	return pol
}

// baseEvent is a purchase with identifiers, context and properties, EU, no consent choice.
func baseEvent() *schemas.Event {
	return &schemas.Event{
		EventID:      "3f0c0000-0000-4000-8000-000000000001",
		Event:        "purchase",
		TimestampMs:  1795428000000,
		ReceivedMs:   1795428000100,
		UserID:       "u-42",
		AnonymousID:  "a-7f3",
		Jurisdiction: "EU",
		Context: map[string]string{
			"page_url":   `"https://shop.example/checkout"`,
			"user_agent": `"Mozilla/5.0"`,
			"ip":         `"203.0.113.9"`,
		},
		Properties: map[string]string{
			"order_value": `149.0`,
			"currency":    `"EUR"`,
			"email":       `"Ann@Example.com "`,
			"phone":       `"+1 (650) 555-1212"`,
			"fbclid":      `"IwAR0AbC"`,
		},
	}
}

// allTrue is an event consent object granting every purpose.
func allTrue() map[string]bool {
	return map[string]bool{"necessary": true, "analytics": true, "marketing": true}
}

func outcomeFor(tb testing.TB, outs []Outcome, dest string) Outcome {
	tb.Helper()
	for _, o := range outs {
		if o.Decision.Destination == dest {
			return o
		}
	}
	tb.Fatalf("no outcome for destination %q", dest)
	return Outcome{}
}
