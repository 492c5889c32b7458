// Package consent is tollgate's consent engine: given an event, the user's recorded consent and
// the policy, it decides for every destination whether the event may be forwarded and, if so,
// exactly which (minimised, hashed) fields that destination receives (docs/consent.md).
//
// It is pure — no I/O, no clock, no logging — so the live processor and replay reach the same
// answer for the same inputs, and so it can be fuzzed. The rule for recorded consent (restrict.go)
// is also what the processor's lookahead and the sinks' send-time re-check apply.
package consent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Outcomes of a decision.
const (
	Forwarded = "forwarded"
	Blocked   = "blocked"
)

// Reasons of a decision (docs/consent.md; decisions.reason in docs/audit.md).
const (
	ReasonErased    = "erased"
	ReasonNecessary = "necessary"
	ReasonWithdrawn = "withdrawn"
	ReasonNoConsent = "no_consent"
	ReasonOptedOut  = "opted_out"
	ReasonGPC       = "gpc"
	ReasonSensitive = "sensitive"
	ReasonConsented = "consented"
)

// State is a user's latest recorded consent (/v1/consent) and erasure flag.
//
// It applies to every event decided after it was recorded, whatever the event's own timestamp: a
// withdrawal must also stop events that were already queued (docs/consent.md), so Decide does not
// compare UpdatedMs with the event time. NoticeVersion and UpdatedMs are carried for the caller's
// audit trail only.
type State struct {
	Consent       map[string]bool // purpose → choice; a purpose not in the map was not recorded
	Erased        bool
	NoticeVersion string
	UpdatedMs     int64
}

// Outcome of one event for one destination. Filtered is nil when blocked.
type Outcome struct {
	Decision schemas.Decision
	Filtered *schemas.FilteredEvent
}

// Decide applies docs/consent.md to an event for every destination of the policy (in pol.Names order).
//
// st may be nil (nothing recorded for the user). now is the decision time; runID is empty for live
// traffic and the replay's run id otherwise. Decision ids depend only on (event id, destination,
// run id), so reprocessing an event yields the same ids and the audit table can deduplicate.
// Decide returns nil when ev or pol is nil.
func Decide(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string) []Outcome {
	return DecideOnly(ev, st, pol, now, runID, nil)
}

// DecideOnly is Decide for the destinations only accepts (nil: all): the pre-consent hold
// decides an event's other destinations at another time.
func DecideOnly(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string, only func(dest string) bool) []Outcome {
	if ev == nil || pol == nil {
		return nil
	}
	d := newDecider(ev, st, pol, now, runID)
	out := make([]Outcome, 0, len(pol.Names))
	for _, name := range pol.Names {
		dest := pol.Destinations[name]
		if dest == nil || (only != nil && !only(name)) {
			continue
		}
		out = append(out, d.decide(dest))
	}
	return out
}

// newDecider prepares what every destination's decision for ev shares.
func newDecider(ev *schemas.Event, st *State, pol *policy.Policy, now time.Time, runID string) decider {
	d := decider{ev: ev, st: st, pol: pol, runID: runID, nowMs: now.UnixMilli(), sensitive: -1}
	d.jurisdiction = ev.Jurisdiction
	if d.jurisdiction == "" {
		d.jurisdiction = policy.DefaultJurisdiction
	}
	// An unknown jurisdiction keeps its name in the audit record but takes the default model.
	d.model = pol.Model(d.jurisdiction)
	d.sig = parseSignals(ev.Signals)
	return d
}

// decider holds what is shared by every destination's decision for one event.
type decider struct {
	ev           *schemas.Event
	st           *State
	pol          *policy.Policy
	runID        string
	nowMs        int64
	jurisdiction string
	model        string
	present      []string        // the event's field paths, sorted (fields: at the first decision)
	sensitive    int8            // -1 not yet evaluated, 0 no rule matches, 1 a rule matches
	sig          *eventSignals   // the CMP's signals (signals.go); nil when none were sent
	effective    map[string]bool // effectiveConsent's answer, once worked out; never handed out
	vendor       map[string]bool // vendorConsent's answer, once worked out; never handed out
}

func (d *decider) decide(dest *policy.Destination) Outcome {
	reason := d.reason(dest)
	dec := schemas.Decision{
		DecisionID:    DecisionID(d.ev.EventID, dest.Name, d.runID),
		EventID:       d.ev.EventID,
		UserKey:       d.ev.UserKey(),
		Destination:   dest.Name,
		EventName:     d.ev.Event,
		EventTimeMs:   d.ev.TimestampMs,
		DecidedMs:     d.nowMs,
		Reason:        reason,
		Purpose:       dest.Purpose,
		Jurisdiction:  d.jurisdiction,
		GPC:           d.ev.GPC,
		PolicyVersion: d.pol.Version,
		RunID:         d.runID,
		ConsentSource: d.consentSource(dest),
	}
	if d.sig != nil {
		dec.ConsentProof = d.sig.proof
	}
	if reason != ReasonNecessary && reason != ReasonConsented {
		dec.Outcome = Blocked
		dec.FieldsSent = []string{}
		dec.FieldsStripped = slices.Clone(d.fields())
		return Outcome{Decision: dec}
	}
	dec.Outcome = Forwarded
	dec.FieldsSent, dec.FieldsStripped = d.split(dest)
	fields := make(map[string]string, len(dec.FieldsSent))
	for _, path := range dec.FieldsSent {
		v, _ := fieldJSON(d.ev, path)
		if dest.Hashed(path) {
			v = HashField(dest.Type, path, v)
		}
		fields[path] = v
	}
	consent := d.effectiveConsent()
	return Outcome{Decision: dec, Filtered: &schemas.FilteredEvent{
		EventID:       d.ev.EventID,
		DecisionID:    dec.DecisionID,
		Destination:   dest.Name,
		Event:         d.ev.Event,
		TimestampMs:   d.ev.TimestampMs,
		DecidedMs:     d.nowMs,
		UserKey:       dec.UserKey,
		Purpose:       dest.Purpose,
		Jurisdiction:  d.jurisdiction,
		GPC:           d.ev.GPC,
		Consent:       consent,
		Fields:        fields,
		PolicyVersion: d.pol.Version,
		RunID:         d.runID,
		VendorConsent: d.vendorConsent(consent),
	}}
}

// reason walks the rules of docs/consent.md in order (explain.go); the first that applies wins.
func (d *decider) reason(dest *policy.Destination) string {
	return d.firstRule(dest, nil)
}

// withdrawn reports whether the user's recorded consent says false for the purpose. A recorded
// true grants nothing by itself: it intersects with the event's consent (rule 5 still applies), so
// a stale "yes" cannot override what the event says.
func (d *decider) withdrawn(purpose string) bool {
	if d.st == nil {
		return false
	}
	choice, ok := d.st.Consent[purpose]
	return ok && !choice
}

// granted reports whether the event's own consent and its CMP signals (signals.go) grant the
// purpose under the jurisdiction's model: any refusal refuses; otherwise opt_in needs a grant,
// and opt_out grants when no choice was made. dest may be nil (no vendor-specific signal).
func (d *decider) granted(purpose string, dest *policy.Destination) bool {
	switch d.choose(purpose, dest).state {
	case signals.Denied:
		return false
	case signals.Granted:
		return true
	}
	return d.model == policy.OptOut // no choice; opt_in is also Model's safe answer for anything unknown
}

// effectiveConsent is the grant per policy purpose after intersecting recorded and event consent
// under the model. Sinks need it for vendor consent flags (GA4 and Google Ads ad_user_data). Each
// FilteredEvent gets its own map so that no consumer can change another's.
func (d *decider) effectiveConsent() map[string]bool {
	if d.effective == nil { // the same for every destination: worked out once per event
		d.effective = make(map[string]bool, len(d.pol.Purposes))
		for _, p := range d.pol.Purposes {
			d.effective[p] = p == policy.Necessary || (!d.withdrawn(p) && d.granted(p, nil))
		}
	}
	return maps.Clone(d.effective)
}

// isSensitive reports whether any sensitive rule matches the event, evaluating the rules once per
// event however many marketing destinations there are.
func (d *decider) isSensitive() bool {
	if d.sensitive < 0 {
		d.sensitive = 0
		for _, r := range d.pol.Sensitive {
			if r == nil {
				continue
			}
			if v, ok := fieldJSON(d.ev, r.Field); ok && r.Match(textOf(v)) {
				d.sensitive = 1
				break
			}
		}
	}
	return d.sensitive == 1
}

// split partitions the event's present fields into those the destination lists and the rest,
// both sorted because present is.
func (d *decider) split(dest *policy.Destination) (sent, stripped []string) {
	sent = make([]string, 0, len(dest.Fields))
	present := d.fields()
	stripped = make([]string, 0, len(present))
	for _, p := range present {
		if slices.Contains(dest.Fields, p) {
			sent = append(sent, p)
		} else {
			stripped = append(stripped, p)
		}
	}
	return sent, stripped
}

// fields is the event's field paths, worked out at the first decision that needs them: reading
// an event's choices (Choices, a held user's later event) or finding that every destination
// waits for one (DecideOrHold) needs none.
func (d *decider) fields() []string {
	if d.present == nil {
		d.present = presentFields(d.ev)
	}
	return d.present
}

// presentFields lists the event's field paths, sorted: user_id and anonymous_id when non-empty,
// then context.<name> and properties.<name> for every key.
func presentFields(ev *schemas.Event) []string {
	out := make([]string, 0, 2+len(ev.Context)+len(ev.Properties))
	if ev.UserID != "" {
		out = append(out, "user_id")
	}
	if ev.AnonymousID != "" {
		out = append(out, "anonymous_id")
	}
	// Every "context.<name>" and "properties.<name>" path is cut from one string built in one
	// allocation, rather than one concatenation per key (this runs for every event).
	size := 0
	for k := range ev.Context {
		size += len("context.") + len(k)
	}
	for k := range ev.Properties {
		size += len("properties.") + len(k)
	}
	var sb strings.Builder
	sb.Grow(size)
	var ends [64]int // path ends in sb; more keys than that fall back to a heap slice
	end := ends[:0]
	for k := range ev.Context {
		sb.WriteString("context.")
		sb.WriteString(k)
		end = append(end, sb.Len())
	}
	for k := range ev.Properties {
		sb.WriteString("properties.")
		sb.WriteString(k)
		end = append(end, sb.Len())
	}
	all, start := sb.String(), 0
	for _, e := range end {
		out = append(out, all[start:e])
		start = e
	}
	slices.Sort(out)
	return out
}

// fieldJSON returns the JSON text of the field at path, and whether the event has it.
func fieldJSON(ev *schemas.Event, path string) (string, bool) {
	switch path {
	case "user_id":
		return jsonString(ev.UserID), ev.UserID != ""
	case "anonymous_id":
		return jsonString(ev.AnonymousID), ev.AnonymousID != ""
	}
	head, name, _ := strings.Cut(path, ".")
	var v string
	var ok bool
	switch head {
	case "context":
		v, ok = ev.Context[name]
	case "properties":
		v, ok = ev.Properties[name]
	}
	return v, ok
}

// jsonString returns s as JSON text. Identifiers are nearly always plain ASCII, which is quoted
// directly; anything else goes through encoding/json for correct escaping.
func jsonString(s string) string {
	if isPlainASCII(s) && !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// DecisionID is the id of the decision for one event, destination and run: the first 32 hex
// characters of a SHA-256 over the three, each length-prefixed so that no two different triples
// hash the same input ("a|b","c" vs "a","b|c"). It is deterministic so that reprocessing an event
// reproduces its decision ids.
func DecisionID(eventID, destination, runID string) string {
	var stack [256]byte // typical ids fit: no allocation for the hash input
	buf := stack[:0]
	for _, s := range [...]string{eventID, destination, runID} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}
