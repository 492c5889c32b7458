package schemas

import _ "embed"

//go:embed journal.avsc
var journalSchema string

// JournalRecord is one line of a destination's delivery journal: the intent of a request,
// written before it is sent, or its outcome, written after the answer (docs/delivery.md).
type JournalRecord struct {
	Kind        string         `avro:"kind"` // JournalIntent or JournalOutcome
	RequestID   string         `avro:"request_id"`
	Destination string         `avro:"destination"`
	Source      string         `avro:"source"`
	Writer      string         `avro:"writer"`
	AtMs        int64          `avro:"at_ms"`
	HTTPStatus  int            `avro:"http_status"`
	LatencyMs   int64          `avro:"latency_ms"`
	Resend      bool           `avro:"resend"`
	Events      []JournalEvent `avro:"events"`
}

// JournalEvent is one event of a journaled request.
type JournalEvent struct {
	EventID   string `avro:"event_id"`
	DecidedMs int64  `avro:"decided_ms"`
	Attempt   int    `avro:"attempt"`
	Status    string `avro:"status"`
	Error     string `avro:"error"`
	RunID     string `avro:"run_id"` // a repair's replay run; "" for live traffic
}

// Kinds of journal records.
const (
	JournalIntent  = "intent"
	JournalOutcome = "outcome"
)

// JournalStatusUnsent marks, in an outcome, an event of an intent whose request was never made
// (shutdown before sending): the intent is closed and nothing is audited.
const JournalStatusUnsent = "unsent"

// Journal is the codec of JournalRecord. A journal topic also holds the LedgerEntry records
// written before the journal (one per delivered event): readers tell them apart with Is.
var Journal = newCodec[JournalRecord](journalSchema)

// Deliveries are the deliveries audit rows of an outcome: one per event the request carried
// (none for an intent, nor for events recorded unsent). Each row's delivery_id is the request's
// id and the event's, so a row read twice is the same row, and two requests are two rows.
func (r *JournalRecord) Deliveries() []Delivery {
	if r.Kind != JournalOutcome {
		return nil
	}
	out := make([]Delivery, 0, len(r.Events))
	for _, e := range r.Events {
		if e.Status == JournalStatusUnsent || e.Status == "" {
			continue
		}
		out = append(out, Delivery{EventID: e.EventID, Destination: r.Destination, Attempt: e.Attempt, Status: e.Status,
			HTTPStatus: r.HTTPStatus, Error: e.Error, LatencyMs: r.LatencyMs, AtMs: r.AtMs, DeliveryID: r.RequestID + "/" + e.EventID, RunID: e.RunID})
	}
	return out
}
