package schemas

import (
	_ "embed"
	"fmt"

	"github.com/hamba/avro/v2"
)

var (
	//go:embed journal.avsc
	journalSchema string
	//go:embed previous/journal.1.avsc
	journalSchemaV1 string
)

// JournalRecord is one line of a destination's delivery journal (docs/delivery.md): the intents
// and outcomes of requests that one sink process wrote at one moment. Requests that start
// together share one record for their intents, and outcomes that come in together one for
// theirs (group commit), so a vendor that takes one user per request (GA4) does not cost two
// records per request.
type JournalRecord struct {
	Destination string           `avro:"destination"`
	Writer      string           `avro:"writer"`
	AtMs        int64            `avro:"at_ms"`
	Requests    []JournalRequest `avro:"requests"`
}

// JournalRequest is the intent of one request (written before it is sent) or its outcome
// (written after the answer), for the events of the request read from one partition.
type JournalRequest struct {
	Kind      string `avro:"kind"` // JournalIntent or JournalOutcome
	RequestID string `avro:"request_id"`
	Source    string `avro:"source"`
	// Partition is the partition of the source topic the events were read from;
	// PartitionOfRecord in a version 1 record, which was written to that partition itself.
	Partition  int32          `avro:"partition"`
	AtMs       int64          `avro:"at_ms"`
	HTTPStatus int            `avro:"http_status"`
	LatencyMs  int64          `avro:"latency_ms"`
	Resend     bool           `avro:"resend"`
	Events     []JournalEvent `avro:"events"`
}

// PartitionOfRecord is the Partition of a request read from a version 1 record: the partition
// of the Kafka record that holds it.
const PartitionOfRecord = -1

// JournalEvent is one event of a journaled request.
type JournalEvent struct {
	EventID   string `avro:"event_id"`
	DecidedMs int64  `avro:"decided_ms"`
	Attempt   int    `avro:"attempt"`
	Status    string `avro:"status"`
	Error     string `avro:"error"`
	RunID     string `avro:"run_id"` // a repair's replay run; "" for live traffic
}

// Kinds of journal requests.
const (
	JournalIntent  = "intent"
	JournalOutcome = "outcome"
)

// JournalStatusUnsent marks, in an outcome, an event of an intent whose request was never made
// (shutdown before sending): the intent is closed and nothing is audited.
const JournalStatusUnsent = "unsent"

// JournalRecordV1 is the journal record of version 1 (previous/journal.1.avsc): one intent or
// one outcome, on the partition its events were read from. Journals written before version 2
// still hold them; Journal reads them as a record of one request.
type JournalRecordV1 struct {
	Kind        string         `avro:"kind"`
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

func (r *JournalRecordV1) upgrade() JournalRecord {
	return JournalRecord{Destination: r.Destination, Writer: r.Writer, AtMs: r.AtMs, Requests: []JournalRequest{{
		Kind: r.Kind, RequestID: r.RequestID, Source: r.Source, Partition: PartitionOfRecord, AtMs: r.AtMs,
		HTTPStatus: r.HTTPStatus, LatencyMs: r.LatencyMs, Resend: r.Resend, Events: r.Events}}}
}

// JournalCodec reads both versions of the journal record and writes the current one. (Avro's
// schema resolution cannot turn a record into an array of them, so version 1 has a codec of
// its own rather than being an older version of the current codec.)
type JournalCodec struct {
	current *Codec[JournalRecord]
	v1      *Codec[JournalRecordV1]
}

var (
	// Journal is the codec of JournalRecord. A journal topic also holds the LedgerEntry records
	// written before the journal (one per delivered event): readers tell them apart with Is.
	Journal = func() *JournalCodec {
		c := newCodec[JournalRecord](journalSchema)
		c.appendBody, c.size, c.readBody = appendJournal, journalSize, readJournal // journalavro.go
		return &JournalCodec{current: c, v1: JournalV1}
	}()
	// JournalV1 writes version 1 records: tollgate no longer does; tests do, to show they are read.
	JournalV1 = codecOf[JournalRecordV1](mustParseAlone(journalSchemaV1))
)

// mustParseAlone parses a previous version whose names the current version reuses, in a schema
// cache of its own.
func mustParseAlone(text string) avro.Schema {
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		panic(fmt.Sprintf("schemas: previous version: %v", err))
	}
	return s
}

// Encode returns r in single-object encoding (version 2).
func (c *JournalCodec) Encode(r *JournalRecord) ([]byte, error) { return c.current.Encode(r) }

// Is reports whether data is a journal record of either version.
func (c *JournalCodec) Is(data []byte) bool { return c.current.Is(data) || c.v1.Is(data) }

// Decode parses a journal record of either version.
func (c *JournalCodec) Decode(data []byte) (JournalRecord, error) {
	if c.v1.Is(data) {
		old, err := c.v1.Decode(data)
		if err != nil {
			return JournalRecord{}, err
		}
		return old.upgrade(), nil
	}
	return c.current.Decode(data)
}

// Deliveries are the deliveries audit rows of a journal record: one per event of each outcome
// (none for an intent, nor for events recorded unsent). Each row's delivery_id is the request's
// id and the event's, so a row read twice is the same row, and two requests are two rows.
func (r *JournalRecord) Deliveries() []Delivery {
	var out []Delivery
	for i := range r.Requests {
		q := &r.Requests[i]
		if q.Kind != JournalOutcome {
			continue
		}
		for _, e := range q.Events {
			if e.Status == JournalStatusUnsent || e.Status == "" {
				continue
			}
			out = append(out, Delivery{EventID: e.EventID, Destination: r.Destination, Attempt: e.Attempt, Status: e.Status,
				HTTPStatus: q.HTTPStatus, Error: e.Error, LatencyMs: q.LatencyMs, AtMs: q.AtMs, DeliveryID: q.RequestID + "/" + e.EventID, RunID: e.RunID})
		}
	}
	return out
}
