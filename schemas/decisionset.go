package schemas

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
)

// The decisions topic holds one DecisionSet per event: every destination's decision in one
// record, which the audit writer fans out into one decisions row per destination. It was a
// Decision per event and destination, three of an event's ~14 Kafka records, each encoded,
// produced, fetched and decoded on its own; those records stay readable (DecodeDecisions tells
// the two apart by the single-object fingerprint).

var (
	//go:embed decision_set.avsc
	decisionSetSchema string
	//go:embed previous/decision_set.1.avsc
	decisionSetSchemaV1 string
)

// DecisionSet is every destination's consent decision for one event (decision_set.avsc): the
// fields all of them share once, and per destination the fields that differ.
type DecisionSet struct {
	EventID       string                `avro:"event_id"`
	UserKey       string                `avro:"user_key"`
	EventName     string                `avro:"event_name"`
	EventTimeMs   int64                 `avro:"event_time_ms"`
	DecidedMs     int64                 `avro:"decided_ms"`
	Jurisdiction  string                `avro:"jurisdiction"`
	GPC           bool                  `avro:"gpc"`
	PolicyVersion string                `avro:"policy_version"`
	RunID         string                `avro:"run_id"`
	ConsentProof  string                `avro:"consent_proof"`
	Destinations  []DestinationDecision `avro:"destinations"`
}

// DestinationDecision is one destination's entry of a DecisionSet.
type DestinationDecision struct {
	DecisionID     string   `avro:"decision_id"`
	Destination    string   `avro:"destination"`
	Outcome        string   `avro:"outcome"`
	Reason         string   `avro:"reason"`
	Purpose        string   `avro:"purpose"`
	FieldsSent     []string `avro:"fields_sent"`
	FieldsStripped []string `avro:"fields_stripped"`
	ConsentSource  string   `avro:"consent_source"`
	HeldMs         int64    `avro:"held_ms"` // version 2: how long the event waited for the choice
}

// DecisionSets is the codec of DecisionSet, encoded and decoded by hand (decisionsetavro.go).
var DecisionSets = func() *Codec[DecisionSet] {
	c := newCodec[DecisionSet](decisionSetSchema, decisionSetSchemaV1)
	c.appendBody, c.size, c.readBody = appendDecisionSet, decisionSetSize, readDecisionSet
	return c
}()

// ErrMixedDecisions is Add's answer for a decision of another event (or one that disagrees on
// a field every destination's decision of an event shares): a set holds one event.
var ErrMixedDecisions = errors.New("decision set: decisions of different events")

// Add appends d's destination entry; the first decision added sets the shared fields. A set
// gives back exactly the decisions added (AppendDecisions), so it refuses a decision whose shared
// fields differ from the set's rather than lose them.
func (s *DecisionSet) Add(d *Decision) error {
	if len(s.Destinations) == 0 {
		s.EventID, s.UserKey, s.EventName, s.EventTimeMs, s.DecidedMs = d.EventID, d.UserKey, d.EventName, d.EventTimeMs, d.DecidedMs
		s.Jurisdiction, s.GPC, s.PolicyVersion, s.RunID, s.ConsentProof = d.Jurisdiction, d.GPC, d.PolicyVersion, d.RunID, d.ConsentProof
	} else if s.EventID != d.EventID || s.UserKey != d.UserKey || s.EventName != d.EventName || s.EventTimeMs != d.EventTimeMs ||
		s.DecidedMs != d.DecidedMs || s.Jurisdiction != d.Jurisdiction || s.GPC != d.GPC || s.PolicyVersion != d.PolicyVersion ||
		s.RunID != d.RunID || s.ConsentProof != d.ConsentProof {
		return ErrMixedDecisions
	}
	s.Destinations = append(s.Destinations, DestinationDecision{
		DecisionID: d.DecisionID, Destination: d.Destination, Outcome: d.Outcome, Reason: d.Reason, Purpose: d.Purpose,
		FieldsSent: d.FieldsSent, FieldsStripped: d.FieldsStripped, ConsentSource: d.ConsentSource, HeldMs: d.HeldMs,
	})
	return nil
}

// AppendDecisions appends the set's decisions to dst, one per destination in the set's order:
// the Decision records the processor wrote for the event before decision sets.
func (s *DecisionSet) AppendDecisions(dst []Decision) []Decision {
	dst = slices.Grow(dst, len(s.Destinations))
	for i := range s.Destinations {
		dst = append(dst, s.decision(&s.Destinations[i]))
	}
	return dst
}

// decision is the Decision of one of the set's entries.
func (s *DecisionSet) decision(e *DestinationDecision) Decision {
	return Decision{
		DecisionID: e.DecisionID, EventID: s.EventID, UserKey: s.UserKey, Destination: e.Destination,
		EventName: s.EventName, EventTimeMs: s.EventTimeMs, DecidedMs: s.DecidedMs, Outcome: e.Outcome,
		Reason: e.Reason, Purpose: e.Purpose, Jurisdiction: s.Jurisdiction, GPC: s.GPC,
		FieldsSent: e.FieldsSent, FieldsStripped: e.FieldsStripped, PolicyVersion: s.PolicyVersion,
		RunID: s.RunID, ConsentSource: e.ConsentSource, ConsentProof: s.ConsentProof, HeldMs: e.HeldMs,
	}
}

// DecodeDecisions appends the decisions of one record of the decisions topic to dst: every
// entry of a DecisionSet (either version), or the one Decision of a record written before
// decision sets (either version of it). It returns dst unchanged and an error for anything else.
func DecodeDecisions(dst []Decision, data []byte) ([]Decision, error) {
	if bytes.HasPrefix(data, DecisionSets.header) {
		out, err := appendSetDecisions(dst, data[len(DecisionSets.header):])
		if err != nil {
			return out, fmt.Errorf("decode DecisionSet: %w", err)
		}
		return out, nil
	}
	if DecisionSets.Is(data) { // a set of before held_ms: read by schema resolution
		s, err := DecisionSets.Decode(data)
		if err != nil {
			return dst, err
		}
		return s.AppendDecisions(dst), nil
	}
	d, err := Decisions.Decode(data)
	if err != nil {
		return dst, err
	}
	return append(dst, d), nil
}
