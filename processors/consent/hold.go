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
	if ev == nil || pol == nil {
		return nil, nil
	}
	d := newDecider(ev, st, pol, now, runID)
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
	return outs, pending
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
