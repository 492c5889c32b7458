package consent

import (
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The decision order as one list of rules. Decide takes the first rule that applies (reason in
// engine.go); Explain walks the same list and reports every step, so `tollgate policy explain`
// and `tollgate policy test` cannot drift from what the processor does.

// rules names the steps of the decision order (docs/consent.md); check evaluates step i. A
// switch rather than a list of closures keeps the decider on the stack of Decide (no allocation
// per event on the processor's hot path).
var rules = [...]string{"erased", "necessary", "withdrawn", "signals", "event_consent", "gpc", "gpp", "sensitive", "consented"}

// check reports whether rule i decides the destination, and with which reason.
func (d *decider) check(i int, dest *policy.Destination) (reason string, ok bool) {
	switch rules[i] {
	case "erased":
		return ReasonErased, d.st != nil && d.st.Erased
	case "necessary":
		return ReasonNecessary, dest.Purpose == policy.Necessary
	case "withdrawn":
		return ReasonWithdrawn, Restricts(false, d.withdrawn, dest.Purpose) == ReasonWithdrawn
	case "signals": // a CMP signal refusing the purpose (signals.go): refusal beats any grant
		if d.pubRestricted(dest) {
			return ReasonNoConsent, true // the publisher does not allow the vendor this purpose
		}
		if !d.signalRefuses(dest) {
			return "", false
		}
		if d.model == policy.OptOut {
			return ReasonOptedOut, true
		}
		return ReasonNoConsent, true
	case "event_consent":
		if d.granted(dest.Purpose, dest) {
			return "", false
		}
		if d.model == policy.OptOut {
			return ReasonOptedOut, true // only an explicit false refuses under opt_out
		}
		return ReasonNoConsent, true
	case "gpc":
		return ReasonGPC, dest.Sale && d.ev.GPC
	case "gpp": // a GPP US opt-out of sale, sharing or targeted advertising
		return ReasonOptedOut, dest.Sale && d.gppOptedOut()
	case "sensitive":
		// Marketing never receives sensitive data; any other purpose does not either when the
		// GPP string refuses processing of sensitive data (signals.go gppSensitiveRefused).
		return ReasonSensitive, (dest.Purpose == policy.Marketing || d.gppSensitiveRefused()) && d.isSensitive()
	}
	return ReasonConsented, true // "consented": the last rule always applies
}

// firstRule walks the rules in order and returns the reason of the first that applies; trace,
// when non-nil, receives every rule evaluated up to and including it.
func (d *decider) firstRule(dest *policy.Destination, trace *[]Step) string {
	for i, name := range rules {
		reason, ok := d.check(i, dest)
		if trace != nil {
			*trace = append(*trace, Step{Rule: name, Applies: ok, Reason: reasonIf(ok, reason)})
		}
		if ok {
			return reason
		}
	}
	return ReasonConsented // unreachable: the last rule always applies
}

func reasonIf(ok bool, reason string) string {
	if ok {
		return reason
	}
	return ""
}

// Step is one rule as Explain evaluated it. Rules after the deciding one are listed as not
// evaluated.
type Step struct {
	Rule      string `json:"rule"`
	Applies   bool   `json:"applies"`
	Evaluated bool   `json:"evaluated"`
	Reason    string `json:"reason,omitempty"` // set on the deciding rule
}

// Explanation is one destination's decision with the rules that led to it.
type Explanation struct {
	Destination    string   `json:"destination"`
	Purpose        string   `json:"purpose"`
	Jurisdiction   string   `json:"jurisdiction"`
	Model          string   `json:"model"`
	Outcome        string   `json:"outcome"`
	Reason         string   `json:"reason"`
	Rules          []Step   `json:"rules"`
	FieldsKept     []string `json:"fields_kept"`
	FieldsStripped []string `json:"fields_stripped"`
	FieldsHashed   []string `json:"fields_hashed"`
	// Held is set when the processor would hold the event for this destination under the
	// policy's hold (Pending: no choice about the purpose yet, opt_in) instead of deciding it
	// now: Outcome and Reason are then what the event is decided as if no choice arrives
	// within HoldWindow; a choice that does arrive decides it anew.
	Held       bool   `json:"held"`
	HoldWindow string `json:"hold_window,omitempty"`
}

// RuleNames lists the rules in decision order.
func RuleNames() []string {
	return append([]string(nil), rules[:]...)
}

// Explain decides ev like Decide and reports, per destination (in pol.Names order), every rule
// in order with the one that decided and the fields kept, stripped and hashed. The outcome and
// fields are Decide's own.
func Explain(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time) []Explanation {
	outs := Decide(ev, st, pol, now, "")
	if outs == nil {
		return nil
	}
	d := newDecider(ev, st, pol, now, "")
	pending := Pending(ev, st, pol)
	out := make([]Explanation, 0, len(outs))
	for _, o := range outs {
		dest := pol.Destinations[o.Decision.Destination]
		var trace []Step
		d.firstRule(dest, &trace)
		for i := range trace {
			trace[i].Evaluated = true
		}
		for _, name := range rules[len(trace):] {
			trace = append(trace, Step{Rule: name})
		}
		hashed := []string{}
		for _, p := range o.Decision.FieldsSent {
			if dest.Hashed(p) {
				hashed = append(hashed, p)
			}
		}
		held := slices.Contains(pending, dest.Name)
		window := ""
		if held {
			window = pol.Hold.WindowText
		}
		out = append(out, Explanation{
			Destination:    dest.Name,
			Purpose:        dest.Purpose,
			Jurisdiction:   d.jurisdiction,
			Model:          d.model,
			Outcome:        o.Decision.Outcome,
			Reason:         o.Decision.Reason,
			Rules:          trace,
			FieldsKept:     o.Decision.FieldsSent,
			FieldsStripped: o.Decision.FieldsStripped,
			FieldsHashed:   hashed,
			Held:           held,
			HoldWindow:     window,
		})
	}
	return out
}
