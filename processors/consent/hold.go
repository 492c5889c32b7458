package consent

import (
	"maps"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The pre-consent hold (CONTRACT §9, docs/consent.md "Events before the choice"): the engine
// says which destinations of an event would wait for the user's choice, and what a later event
// chooses; the processor keeps the held events and decides them when the choice arrives.

// Pending lists the destinations (in pol.Names order) whose decision of ev waits under the
// policy's hold: in an opt_in jurisdiction, the one rule that blocks is "event_consent" for want
// of any choice: the user recorded none for the purpose, and neither the event's consent nor its
// CMP signals choose it. Anything else (a refusal, GPC, erasure) is decided at once. Nil when the
// policy holds nothing.
func Pending(ev *schemas.Event, st *State, pol *policy.Policy) []string {
	if ev == nil || pol == nil || !pol.Holds() || !mayWait(ev, pol) {
		return nil // nothing can wait: no decision to make for it
	}
	_, pending := DecideOrHold(ev, st, pol, time.Time{}, "")
	return pending
}

// DecideOrHold is Decide and Pending from one reading of the event (the processor's path for
// every event under a hold): the outcomes of the destinations decided now, in pol.Names order,
// and the destinations that wait for the user's choice.
func DecideOrHold(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string) (outs []Outcome, pending []string) {
	return DecideOrChoose(ev, st, pol, now, runID, nil)
}

// DecideOrChoose is DecideOrHold that asks choose, when destinations would wait, for a choice
// already known for them (destination → granted; nil: none, they wait): given one, they are
// decided at once under it, after the others, as DecideChosen decides them, from the same
// reading of the event.
func DecideOrChoose(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string, choose func(pending []string) map[string]bool) (outs []Outcome, pending []string) {
	if ev == nil || pol == nil {
		return nil, nil
	}
	d, outs, pending := decideOrHold(ev, st, pol, now, runID)
	if len(pending) == 0 || choose == nil {
		return outs, pending
	}
	if choices := choose(pending); choices != nil {
		return d.chosen(choices, outs), nil
	}
	return outs, pending
}

// DecideChosen decides ev for the destinations choices names (destination → granted) as if ev
// had carried those choices in its own consent (WithChoices): one group per answer, each in
// pol.Names order. How a held event is decided under the choice that releases it.
func DecideChosen(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string, choices map[string]bool) []Outcome {
	if ev == nil || pol == nil {
		return nil
	}
	d := newDecider(ev, st, pol, now, runID)
	return d.chosen(choices, nil)
}

// chosen appends to out the decisions of the destinations choices names, under those choices.
// Each answer's decider is this one with the event's consent extended: what does not depend on
// the consent (the event's fields, its sensitivity, its CMP signals) is read once.
func (d *decider) chosen(choices map[string]bool, out []Outcome) []Outcome {
	for _, granted := range []bool{true, false} {
		purposes := map[string]bool{}
		for name, g := range choices {
			if dest := d.pol.Destinations[name]; dest != nil && g == granted {
				purposes[dest.Purpose] = granted
			}
		}
		if len(purposes) == 0 {
			continue
		}
		dc := *d
		dc.ev, dc.effective, dc.vendor = WithChoices(d.ev, purposes), nil, nil // both read the consent
		for _, name := range d.pol.Names {
			if g, ok := choices[name]; ok && g == granted && d.pol.Destinations[name] != nil {
				out = append(out, dc.decide(d.pol.Destinations[name]))
			}
		}
	}
	return out
}

// decideOrHold is DecideOrHold's reading of the event, with its decider.
func decideOrHold(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string) (d decider, outs []Outcome, pending []string) {
	d = newDecider(ev, st, pol, now, runID)
	holds := pol.Holds() && mayWait(ev, pol) && d.model == policy.OptIn
	outs = make([]Outcome, 0, len(pol.Names))
	for _, name := range pol.Names {
		dest := pol.Destinations[name]
		switch {
		case dest == nil:
		case holds && d.undecided(dest):
			pending = append(pending, name)
		default:
			outs = append(outs, d.decide(dest))
		}
	}
	return d, outs, pending
}

// mayWait is the fast answer for nearly every event: false when the event's own consent
// chooses every purpose a destination needs (nothing can wait), before any rule is checked.
func mayWait(ev *schemas.Event, pol *policy.Policy) bool {
	for _, name := range pol.Names {
		d := pol.Destinations[name]
		if d == nil || d.Purpose == policy.Necessary {
			continue
		}
		if _, chosen := ev.Consent[d.Purpose]; !chosen {
			return true
		}
	}
	return false
}

// undecided reports whether dest's decision is "no choice yet": the deciding rule is
// event_consent, no later rule but the last would block it (a GPC signal, a GPP opt-out or
// sensitive data block it whatever the choice: decided at once), and nothing chose the purpose.
func (d *decider) undecided(dest *policy.Destination) bool {
	waits := false
	for i, name := range rules {
		if _, ok := d.check(i, dest); !ok {
			continue
		}
		if !waits && name != "event_consent" {
			return false
		}
		if waits {
			if name != "consented" {
				return false
			}
			break
		}
		waits = true
	}
	if d.st != nil {
		if _, recorded := d.st.Consent[dest.Purpose]; recorded {
			return false
		}
	}
	return d.choose(dest.Purpose, dest).state == signals.Unknown
}

// Choices returns what ev chooses for a destination's purpose (its own consent and its CMP
// signals, as the engine reads them for that destination): ok is false when it makes no choice
// (or names no destination of pol). The event's signals are read once for every destination.
func Choices(ev *schemas.Event, pol *policy.Policy) func(dest string) (granted, ok bool) {
	dc := newDecider(ev, nil, pol, time.Time{}, "")
	return func(dest string) (bool, bool) {
		d := pol.Destinations[dest]
		if d == nil {
			return false, false
		}
		switch dc.choose(d.Purpose, d).state {
		case signals.Granted:
			return true, true
		case signals.Denied:
			return false, true
		}
		return false, false
	}
}

// WithChoices is ev as if it had carried choices (purpose → granted) in its own consent: how a
// held event is decided under the choice that released it. ev is not changed.
func WithChoices(ev *schemas.Event, choices map[string]bool) *schemas.Event {
	out := *ev
	out.Consent = make(map[string]bool, len(ev.Consent)+len(choices))
	maps.Copy(out.Consent, ev.Consent)
	maps.Copy(out.Consent, choices)
	return &out
}
