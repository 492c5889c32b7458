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
