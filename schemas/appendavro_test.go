package schemas

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendFilteredEventMatchesSchema: the hand encoder writes what hamba/avro writes from
// filtered_event.avsc, byte for byte where map order cannot differ (at most one entry per map; the size prefix of a map block is checked there too),
// and what hamba/avro decodes back to the same event otherwise. A field added to the schema
// and not to appendFilteredEvent fails here.
func TestAppendFilteredEventMatchesSchema(t *testing.T) {
	base := FilteredEvent{EventID: "e-1", DecisionID: "d-1", Destination: "meta", Event: "purchase", TimestampMs: 1795000000000,
		DecidedMs: -5, UserKey: "u-ü", Purpose: "marketing", Jurisdiction: "EU", GPC: true, PolicyVersion: "v1", RunID: "r"}
	cases := map[string]FilteredEvent{"empty maps": base}
	one := base
	one.Consent, one.Fields = map[string]bool{"marketing": true}, map[string]string{"context.page_url": `"https://x/é"`}
	one.VendorConsent = map[string]bool{VendorLimitedDataUse: true}
	cases["one entry each"] = one
	extremes := one
	extremes.TimestampMs, extremes.DecidedMs, extremes.EventID, extremes.RunID = math.MaxInt64, math.MinInt64, strings.Repeat("x", 300), ""
	cases["extremes"] = extremes
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := FilteredEvents.soe.Encode(&ev)
			require.NoError(t, err)
			got, err := FilteredEvents.Encode(&ev)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	many := one
	many.Consent, many.Fields, many.VendorConsent = map[string]bool{}, map[string]string{}, map[string]bool{}
	for i := range 40 {
		many.Consent[fmt.Sprint("p", i)] = i%2 == 0
		many.VendorConsent[fmt.Sprint("v", i)] = i%3 == 0
		many.Fields[fmt.Sprint("properties.f", i)] = fmt.Sprint(i * 1000)
	}
	b, err := FilteredEvents.Encode(&many)
	require.NoError(t, err)
	var back FilteredEvent
	require.NoError(t, FilteredEvents.soe.Decode(b, &back))
	require.Equal(t, many, back)
}

// TestAppendDecisionMatchesSchema: the hand encoder writes what hamba/avro writes from
// decision.avsc, byte for byte (arrays keep their order). A field added to the schema and not
// to appendDecision fails here.
func TestAppendDecisionMatchesSchema(t *testing.T) {
	base := Decision{DecisionID: "7f5e", EventID: "e-ü", UserKey: "u-1", Destination: "meta", EventName: "purchase",
		EventTimeMs: 1795000000000, DecidedMs: math.MinInt64, Outcome: "forwarded", Reason: "consented", Purpose: "marketing",
		Jurisdiction: "EU", GPC: true, PolicyVersion: "v1", RunID: "r", FieldsSent: []string{}, FieldsStripped: []string{}}
	full := base
	full.FieldsSent = []string{"context.page_url", "properties.email", strings.Repeat("p", 200)}
	full.FieldsStripped = []string{"properties.phone"}
	full.GPC, full.RunID, full.EventTimeMs = false, "", math.MaxInt64
	full.ConsentSource, full.ConsentProof = "event,gcm,tcf", strings.Repeat("ab", 32)
	for name, d := range map[string]Decision{"empty arrays": base, "full": full} {
		t.Run(name, func(t *testing.T) {
			want, err := Decisions.soe.Encode(&d)
			require.NoError(t, err)
			got, err := Decisions.Encode(&d)
			require.NoError(t, err)
			require.Equal(t, want, got)
			back, err := Decisions.Decode(got)
			require.NoError(t, err)
			require.Equal(t, d, back)
		})
	}
}
