package consent

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Explain must report exactly Decide's outcome, and name as deciding rule the one whose reason
// Decide recorded, with every earlier rule evaluated and not applying.
func TestExplainMatchesDecide(t *testing.T) {
	pol := loadPolicy(t)
	all := map[string]bool{"necessary": true, "analytics": true, "marketing": true}
	cases := []struct {
		name   string
		mutate func(*schemas.Event)
		st     *State
		dest   string
		reason string
	}{
		{"erased", nil, &State{Erased: true}, "ops", ReasonErased},
		{"necessary", nil, nil, "ops", ReasonNecessary},
		{"withdrawn", func(ev *schemas.Event) { ev.Consent = all }, &State{Consent: map[string]bool{"marketing": false}}, "meta", ReasonWithdrawn},
		{"no_consent", nil, nil, "meta", ReasonNoConsent},
		{"opted_out", func(ev *schemas.Event) { ev.Jurisdiction, ev.Consent = "US-CA", map[string]bool{"marketing": false} }, nil, "meta", ReasonOptedOut},
		{"gpc", func(ev *schemas.Event) { ev.Consent, ev.GPC = all, true }, nil, "meta", ReasonGPC},
		{"sensitive", sensitivePage(all), nil, "meta", ReasonSensitive},
		{"consented", func(ev *schemas.Event) { ev.Consent = all }, nil, "meta", ReasonConsented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := baseEvent()
			if tc.mutate != nil {
				tc.mutate(ev)
			}
			decided := map[string]schemas.Decision{}
			for _, o := range Decide(ev, tc.st, pol, decidedAt, "") {
				decided[o.Decision.Destination] = o.Decision
			}
			ex := Explain(ev, tc.st, pol, decidedAt)
			require.Len(t, ex, len(decided))
			for _, e := range ex {
				d := decided[e.Destination]
				require.Equal(t, d.Outcome, e.Outcome, e.Destination)
				require.Equal(t, d.Reason, e.Reason, e.Destination)
				require.Equal(t, d.FieldsSent, e.FieldsKept, e.Destination)
				require.Equal(t, d.FieldsStripped, e.FieldsStripped, e.Destination)
				require.Len(t, e.Rules, len(RuleNames()))
				deciding := -1
				for i, s := range e.Rules {
					if s.Applies {
						require.Equal(t, -1, deciding, "one rule decides")
						deciding = i
						require.Equal(t, e.Reason, s.Reason)
					}
					require.Equal(t, deciding == -1 || i == deciding, s.Evaluated, "rules up to the deciding one are evaluated")
				}
				require.NotEqual(t, -1, deciding)
				if e.Destination == tc.dest {
					require.Equal(t, tc.reason, e.Reason)
				}
			}
		})
	}
	ex := Explain(func() *schemas.Event { ev := baseEvent(); ev.Consent = all; return ev }(), nil, pol, decidedAt)
	for _, e := range ex {
		if e.Destination == "meta" {
			require.Contains(t, e.FieldsHashed, "properties.email")
		}
	}
}
