package consent

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
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

// Under the policy's hold, Explain marks the destinations whose decision would wait for the
// user's choice (Pending's), with the window, and keeps the outcome the window's end gives.
func TestExplainShowsHeldDestinations(t *testing.T) {
	held := func(pol *policy.Policy, ev *schemas.Event, st *State) map[string]string {
		out := map[string]string{}
		for _, e := range Explain(ev, st, pol, decidedAt) {
			if e.Held {
				out[e.Destination] = e.HoldWindow + " " + e.Outcome + "/" + e.Reason
			} else {
				require.Empty(t, e.HoldWindow, e.Destination)
			}
		}
		return out
	}
	pol := loadPolicy(t, "purposes:", "hold: {window: 2m}\npurposes:")
	ev := baseEvent() // EU, no choice
	got := held(pol, ev, nil)
	require.Equal(t, "2m blocked/no_consent", got["ga4"])
	require.Equal(t, "2m blocked/no_consent", got["meta"])
	require.NotContains(t, got, "ops", "necessary is never held")
	for dest := range got {
		require.Contains(t, Pending(ev, nil, pol), dest, "Explain and Pending agree")
	}
	require.Len(t, got, len(Pending(ev, nil, pol)))

	require.Empty(t, held(loadPolicy(t), ev, nil), "no hold in the policy: nothing held")
	chose := baseEvent()
	chose.Consent = map[string]bool{"analytics": true, "marketing": false}
	require.Empty(t, held(pol, chose, nil), "an event carrying a choice is decided at once")
	require.Empty(t, held(pol, ev, &State{Consent: map[string]bool{"analytics": false, "marketing": false}}), "a recorded refusal decides at once")
	optOut := baseEvent()
	optOut.Jurisdiction = "US-CA"
	require.Empty(t, held(pol, optOut, nil), "opt_out jurisdictions hold nothing")
}
