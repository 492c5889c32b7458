package consent

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

func TestPending(t *testing.T) {
	pol := loadPolicy(t)
	pol.Hold = &policy.Hold{Window: time.Minute, MaxEventsPerUser: 10}
	ev := func(j string, c map[string]bool) *schemas.Event {
		return &schemas.Event{EventID: "e", UserID: "u", Jurisdiction: j, Consent: c}
	}
	for _, tc := range []struct {
		name string
		ev   *schemas.Event
		st   *State
		want []string
	}{
		{"opt_in, no choice: every purpose but necessary waits", ev("EU", nil), nil, []string{"ga4", "gads", "meta", "tiktok"}},
		{"a choice for one purpose", ev("EU", map[string]bool{"analytics": true}), nil, []string{"gads", "meta", "tiktok"}},
		{"a refusal is a choice", ev("EU", map[string]bool{"analytics": false, "marketing": false}), nil, nil},
		{"opt_out never waits", ev("US-CA", nil), nil, nil},
		{"a recorded choice", ev("EU", nil), &State{Consent: map[string]bool{"marketing": false}}, []string{"ga4"}},
		{"erased: decided at once", ev("EU", nil), &State{Erased: true}, nil},
		{"GPC blocks sale destinations whatever the choice", func() *schemas.Event { e := ev("EU", nil); e.GPC = true; return e }(), nil, []string{"ga4", "gads"}},
	} {
		require.Equal(t, tc.want, Pending(tc.ev, tc.st, pol), tc.name)
		// DecideOrHold, the processor's one pass: the same pending destinations, and the others
		// decided as DecideOnly decides them.
		now := time.UnixMilli(1_790_000_000_000)
		outs, pending := DecideOrHold(tc.ev, tc.st, pol, now, "")
		require.Equal(t, tc.want, pending, tc.name)
		rest := DecideOnly(tc.ev, tc.st, pol, now, "", func(d string) bool { return !slices.Contains(tc.want, d) })
		require.Equal(t, rest, outs, tc.name)
		require.Len(t, outs, len(pol.Names)-len(tc.want), tc.name)
	}
	pol.Hold = nil
	require.Nil(t, Pending(ev("EU", nil), nil, pol), "no hold in the policy")

	choose := Choices(ev("EU", map[string]bool{"marketing": true}), pol)
	g, ok := choose("meta")
	require.True(t, ok)
	require.True(t, g)
	_, ok = choose("ga4")
	require.False(t, ok)
	_, ok = choose("nowhere")
	require.False(t, ok)
}

// DecideChosen and DecideOrChoose decide exactly as the event carrying the choices would be
// decided destination by destination (DecideOnly of WithChoices, one group per answer), though
// they read the event once: for grants, refusals, different answers for one purpose (a TCF
// vendor's), a recorded state, GPC, signals and sensitive data.
func TestDecideChosenAsWithChoices(t *testing.T) {
	pol := loadPolicy(t)
	pol.Hold = &policy.Hold{Window: time.Minute, MaxEventsPerUser: 10}
	now := time.UnixMilli(1_790_000_000_000)
	events := map[string]*schemas.Event{"base": baseEvent()}
	gpc := baseEvent()
	gpc.GPC = true
	events["gpc"] = gpc
	sensitive := baseEvent()
	sensitive.Context["page_url"] = `"https://shop.example/pharmacy"`
	events["sensitive"] = sensitive
	signals := baseEvent()
	signals.Signals = &schemas.ConsentSignals{GCM: map[string]string{"analytics_storage": "granted"}}
	events["signals"] = signals
	states := map[string]*State{"none": nil, "recorded": {Consent: map[string]bool{"marketing": true}}}
	choiceSets := map[string]map[string]bool{
		"grant all":  {"ga4": true, "gads": true, "meta": true, "tiktok": true},
		"refuse all": {"ga4": false, "gads": false, "meta": false, "tiktok": false},
		"split":      {"ga4": true, "gads": false, "meta": true, "tiktok": false},
	}
	// want is the formula the processor used before DecideChosen.
	want := func(ev *schemas.Event, st *State, choices map[string]bool) []Outcome {
		var out []Outcome
		for _, granted := range []bool{true, false} {
			purposes := map[string]bool{}
			for dest, g := range choices {
				if g == granted {
					purposes[pol.Destinations[dest].Purpose] = granted
				}
			}
			if len(purposes) == 0 {
				continue
			}
			out = append(out, DecideOnly(WithChoices(ev, purposes), st, pol, now, "", func(d string) bool {
				g, ok := choices[d]
				return ok && g == granted
			})...)
		}
		return out
	}
	for en, ev := range events {
		for sn, st := range states {
			for cn, choices := range choiceSets {
				name := en + "/" + sn + "/" + cn
				require.Equal(t, want(ev, st, choices), DecideChosen(ev, st, pol, now, "", choices), name)

				held, pending := DecideOrHold(ev, st, pol, now, "")
				if len(pending) == 0 {
					continue
				}
				only := map[string]bool{}
				for _, d := range pending {
					only[d] = choices[d]
				}
				outs, left := DecideOrChoose(ev, st, pol, now, "", func(p []string) map[string]bool {
					require.Equal(t, pending, p, name)
					return only
				})
				require.Empty(t, left, name)
				require.Equal(t, append(held, want(ev, st, only)...), outs, name)
			}
		}
	}
}
