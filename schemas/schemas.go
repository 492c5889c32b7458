// Package schemas holds the Avro schemas of every record tollgate writes to Kafka, their Go
// types, and codecs using Avro single-object encoding: each record starts with the magic bytes
// C3 01 and the schema's CRC-64-AVRO fingerprint, so any reader can tell which schema (and which
// version of it) wrote the bytes without a schema registry.
package schemas

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/soe"
)

var (
	//go:embed event.avsc
	eventSchema string
	//go:embed previous/event.1.avsc
	eventSchemaV1 string
	//go:embed consent_update.avsc
	consentUpdateSchema string
	//go:embed filtered_event.avsc
	filteredEventSchema string
	//go:embed previous/filtered_event.1.avsc
	filteredEventSchemaV1 string
	//go:embed decision.avsc
	decisionSchema string
	//go:embed previous/decision.1.avsc
	decisionSchemaV1 string
	//go:embed delivery.avsc
	deliverySchema string
	//go:embed previous/delivery.1.avsc
	deliverySchemaV1 string
	//go:embed previous/delivery.2.avsc
	deliverySchemaV2 string
	//go:embed ledger_entry.avsc
	ledgerEntrySchema string
	//go:embed duplicate.avsc
	duplicateSchema string
)

// Event is a tracking event as accepted by ingest. Context and Properties map a field name to the
// JSON text of its value.
type Event struct {
	EventID      string            `avro:"event_id"`
	Event        string            `avro:"event"`
	TimestampMs  int64             `avro:"timestamp_ms"`
	ReceivedMs   int64             `avro:"received_ms"`
	UserID       string            `avro:"user_id"`
	AnonymousID  string            `avro:"anonymous_id"`
	Consent      map[string]bool   `avro:"consent"` // nil: no choice made
	Jurisdiction string            `avro:"jurisdiction"`
	GPC          bool              `avro:"gpc"`
	Context      map[string]string `avro:"context"`
	Properties   map[string]string `avro:"properties"`
	// Signals are the CMP's consent signals as received; nil when none were sent.
	Signals *ConsentSignals `avro:"consent_signals"`
}

// ConsentSignals are a CMP's signals carried from ingest to the consent engine
// unparsed (ingest has already checked that they parse).
type ConsentSignals struct {
	TCF          string            `avro:"tcf"`
	GPP          string            `avro:"gpp"`
	GPPSID       []int             `avro:"gpp_sid"`
	GCM          map[string]string `avro:"gcm"`
	CMPAllowed   []string          `avro:"cmp_allowed"`
	CMPDenied    []string          `avro:"cmp_denied"`
	CMPHasDenied bool              `avro:"cmp_has_denied"`
	CMPAny       bool              `avro:"cmp_any"`
}

// UserKey is the key a user's records share on every topic: user_id if given, else anonymous_id.
func (e *Event) UserKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// ConsentUpdate is a user's recorded choice, or their erasure.
type ConsentUpdate struct {
	UpdateID      string          `avro:"update_id"`
	UserKey       string          `avro:"user_key"`
	Consent       map[string]bool `avro:"consent"`
	TimestampMs   int64           `avro:"timestamp_ms"`
	NoticeVersion string          `avro:"notice_version"`
	Erased        bool            `avro:"erased"`
}

// FilteredEvent is what one destination may receive of one event. Fields maps a field path
// (e.g. "properties.email") to the JSON text of its value; hashed fields hold a JSON string of
// lower-case SHA-256 hex.
type FilteredEvent struct {
	EventID       string            `avro:"event_id"`
	DecisionID    string            `avro:"decision_id"`
	Destination   string            `avro:"destination"`
	Event         string            `avro:"event"`
	TimestampMs   int64             `avro:"timestamp_ms"`
	DecidedMs     int64             `avro:"decided_ms"`
	UserKey       string            `avro:"user_key"`
	Purpose       string            `avro:"purpose"`
	Jurisdiction  string            `avro:"jurisdiction"`
	GPC           bool              `avro:"gpc"`
	Consent       map[string]bool   `avro:"consent"`
	Fields        map[string]string `avro:"fields"`
	PolicyVersion string            `avro:"policy_version"`
	RunID         string            `avro:"run_id"`
	// VendorConsent holds the vendor's own consent fields, derived from the decision
	// (docs/vendors.md "Consent fields"): VendorAdUserData, VendorAdPersonalization,
	// VendorLimitedDataUse. A record written before it existed decodes with an empty map.
	VendorConsent map[string]bool `avro:"vendor_consent"`
}

// Keys of FilteredEvent.VendorConsent.
const (
	VendorAdUserData        = "ad_user_data"       // Google: the user's data may be used for ads
	VendorAdPersonalization = "ad_personalization" // Google: ads may be personalised
	VendorLimitedDataUse    = "limited_data_use"   // a user of a US state opt-out jurisdiction
)

// Decision is one consent decision for one event and destination.
type Decision struct {
	DecisionID     string   `avro:"decision_id"`
	EventID        string   `avro:"event_id"`
	UserKey        string   `avro:"user_key"`
	Destination    string   `avro:"destination"`
	EventName      string   `avro:"event_name"`
	EventTimeMs    int64    `avro:"event_time_ms"`
	DecidedMs      int64    `avro:"decided_ms"`
	Outcome        string   `avro:"outcome"`
	Reason         string   `avro:"reason"`
	Purpose        string   `avro:"purpose"`
	Jurisdiction   string   `avro:"jurisdiction"`
	GPC            bool     `avro:"gpc"`
	FieldsSent     []string `avro:"fields_sent"`
	FieldsStripped []string `avro:"fields_stripped"`
	PolicyVersion  string   `avro:"policy_version"`
	RunID          string   `avro:"run_id"`
	ConsentSource  string   `avro:"consent_source"` // which signals made the choice (docs/consent.md)
	ConsentProof   string   `avro:"consent_proof"`  // SHA-256 of the TC and GPP strings
	// HeldMs is how long the event waited for the user's choice (the policy's hold); carried in
	// a DecisionSet's entry (decision_set.avsc version 2), not in decision.avsc.
	HeldMs int64 `avro:"held_ms"`
}

// Delivery is one delivery attempt to a vendor.
type Delivery struct {
	EventID     string `avro:"event_id"`
	Destination string `avro:"destination"`
	Attempt     int    `avro:"attempt"`
	Status      string `avro:"status"`
	HTTPStatus  int    `avro:"http_status"`
	Error       string `avro:"error"`
	LatencyMs   int64  `avro:"latency_ms"`
	AtMs        int64  `avro:"at_ms"`
	// DeliveryID identifies one attempt of one event (random, made when the attempt's outcome is
	// recorded). Two real requests carrying the same event are two ids, so the audit keeps both;
	// the same audit record inserted twice (a writer restart) is one.
	DeliveryID string `avro:"delivery_id"`
	// RunID is empty for live traffic and the replay run's id for an attempt of `tollgate
	// repair` (schema version 3; empty in older records).
	RunID string `avro:"run_id"`
}

// LedgerEntry is an event a destination's vendor accepted.
type LedgerEntry struct {
	EventID     string `avro:"event_id"`
	DecidedMs   int64  `avro:"decided_ms"`
	DeliveredMs int64  `avro:"delivered_ms"`
	Attempt     int    `avro:"attempt"`
}

// Duplicate is what the processor remembers of a (user key, event id): its first and last
// sighting and the resends absorbed (schemas/duplicate.avsc).
type Duplicate struct {
	EventID     string `avro:"event_id"`
	UserKey     string `avro:"user_key"`
	FirstSeenMs int64  `avro:"first_seen_ms"`
	LastSeenMs  int64  `avro:"last_seen_ms"`
	Resends     int    `avro:"resends"`
}

// Codec encodes and decodes one record type in Avro single-object encoding.
type Codec[T any] struct {
	schema avro.Schema
	soe    *soe.Codec
	header []byte
	// wire converts to and from a type hamba/avro can handle, when T itself cannot be (a nullable
	// map must be a pointer to a map there); nil when T is encoded as it is.
	toWire   func(*T) any
	fromWire func(decode func(any) error) (T, error)
	// older are previous versions of the schema that the codec still reads, so records written
	// before an upgrade (still on a topic, or replayed) decode with the new code.
	older []olderVersion
	// appendBody, when set, encodes the record by hand (after the header) instead of hamba/avro;
	// size estimates the encoded length.
	appendBody func(b []byte, v *T) []byte
	size       func(v *T) int
	// readBody, when set, decodes a record of the current version by hand (after the header)
	// instead of hamba/avro.
	readBody func(b []byte, v *T) error
}

// olderVersion is a previous version of a record's schema: its single-object header, and the
// resolution of its writer schema to the current reader schema (new fields take their defaults).
type olderVersion struct {
	header   []byte
	resolved avro.Schema
}

// eventWire is Event as hamba/avro encodes it: a nullable union of a map needs *map.
type eventWire struct {
	EventID      string            `avro:"event_id"`
	Event        string            `avro:"event"`
	TimestampMs  int64             `avro:"timestamp_ms"`
	ReceivedMs   int64             `avro:"received_ms"`
	UserID       string            `avro:"user_id"`
	AnonymousID  string            `avro:"anonymous_id"`
	Consent      *map[string]bool  `avro:"consent"`
	Jurisdiction string            `avro:"jurisdiction"`
	GPC          bool              `avro:"gpc"`
	Context      map[string]string `avro:"context"`
	Properties   map[string]string `avro:"properties"`
	Signals      *ConsentSignals   `avro:"consent_signals"`
}

func eventToWire(e *Event) any {
	w := eventWire{e.EventID, e.Event, e.TimestampMs, e.ReceivedMs, e.UserID, e.AnonymousID, nil, e.Jurisdiction, e.GPC, e.Context, e.Properties, e.Signals}
	if e.Consent != nil {
		w.Consent = &e.Consent
	}
	return &w
}

func eventFromWire(decode func(any) error) (Event, error) {
	var w eventWire
	if err := decode(&w); err != nil {
		return Event{}, err
	}
	e := Event{w.EventID, w.Event, w.TimestampMs, w.ReceivedMs, w.UserID, w.AnonymousID, nil, w.Jurisdiction, w.GPC, w.Context, w.Properties, w.Signals}
	if w.Consent != nil {
		e.Consent = *w.Consent
	}
	return e, nil
}

// MaxArrayItems bounds the item count of an Avro array a decoder accepts. hamba/avro allocates
// an array's backing slice from the count in the block header before reading the items, so a
// poison record of a few bytes claiming 10^10 items would abort the process with "out of memory"
// (a fatal error, not a recoverable panic: found by FuzzDecodeDecision). The longest array
// tollgate writes is a decision's fields list, bounded by the policy's field paths.
const MaxArrayItems = 100_000

// decodeAPI is hamba/avro's default configuration plus the array bound above.
var decodeAPI = avro.Config{MaxSliceAllocSize: MaxArrayItems}.Freeze()

// newCodec returns the codec of a schema; previous are the texts of its earlier versions, oldest
// first, which it keeps reading. The embedded schemas are fixed: any failure here is a build bug.
func newCodec[T any](text string, previous ...string) *Codec[T] {
	return codecOf[T](avro.MustParse(text), previous...)
}

// codecOf is newCodec of a parsed schema.
func codecOf[T any](s avro.Schema, previous ...string) *Codec[T] {
	c, err := soe.NewCodecWithAPI(s, decodeAPI)
	if err != nil {
		panic(fmt.Sprintf("schemas: %v", err))
	}
	h, err := soe.BuildHeader(s)
	if err != nil {
		panic(fmt.Sprintf("schemas: %v", err))
	}
	codec := &Codec[T]{schema: s, soe: c, header: h}
	for _, p := range previous {
		// A separate cache: the old and new schemas share their full name.
		old, err := avro.ParseWithCache(p, "", &avro.SchemaCache{})
		if err != nil {
			panic(fmt.Sprintf("schemas: previous version: %v", err))
		}
		oh, err := soe.BuildHeader(old)
		if err != nil {
			panic(fmt.Sprintf("schemas: %v", err))
		}
		resolved, err := avro.NewSchemaCompatibility().Resolve(s, old)
		if err != nil {
			panic(fmt.Sprintf("schemas: %s cannot read its previous version: %v", codec.name(), err))
		}
		codec.older = append(codec.older, olderVersion{header: oh, resolved: resolved})
	}
	return codec
}

// The codecs of every record type. They are safe for concurrent use.
var (
	Events = func() *Codec[Event] {
		c := newCodec[Event](eventSchema, eventSchemaV1)
		c.toWire, c.fromWire, c.readBody = eventToWire, eventFromWire, readEvent
		c.appendBody, c.size = appendEvent, eventSize
		return c
	}()
	ConsentUpdates = newCodec[ConsentUpdate](consentUpdateSchema)
	FilteredEvents = func() *Codec[FilteredEvent] {
		c := newCodec[FilteredEvent](filteredEventSchema, filteredEventSchemaV1)
		c.appendBody, c.size, c.readBody = appendFilteredEvent, filteredEventSize, readFilteredEvent
		return c
	}()
	Decisions = func() *Codec[Decision] {
		c := newCodec[Decision](decisionSchema, decisionSchemaV1)
		c.appendBody, c.size, c.readBody = appendDecision, decisionSize, readDecision
		return c
	}()
	Deliveries = func() *Codec[Delivery] {
		c := newCodec[Delivery](deliverySchema, deliverySchemaV1, deliverySchemaV2)
		c.appendBody, c.size, c.readBody = appendDelivery, deliverySize, readDelivery
		return c
	}()
	LedgerEntries = func() *Codec[LedgerEntry] {
		c := newCodec[LedgerEntry](ledgerEntrySchema)
		c.appendBody, c.size, c.readBody = appendLedgerEntry, ledgerEntrySize, readLedgerEntry
		return c
	}()
	Duplicates = newCodec[Duplicate](duplicateSchema)
)

// Schema returns the parsed Avro schema.
func (c *Codec[T]) Schema() avro.Schema { return c.schema }

// Encode returns v in single-object encoding.
func (c *Codec[T]) Encode(v *T) ([]byte, error) {
	if c.appendBody != nil {
		return c.appendBody(append(make([]byte, 0, len(c.header)+c.size(v)), c.header...), v), nil
	}
	var w any = v
	if c.toWire != nil {
		w = c.toWire(v)
	}
	b, err := c.soe.Encode(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.name(), err)
	}
	return b, nil
}

// MustEncode is Encode for tollgate's own records, built from well-typed values by its own code:
// encoding them cannot fail short of a programming error, so a failure panics rather than
// dropping a record or writing a broken one.
func (c *Codec[T]) MustEncode(v *T) []byte {
	b, err := c.Encode(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode parses single-object encoded bytes. It refuses bytes written with another schema.
// Hostile input yields an error, never a panic.
func (c *Codec[T]) Decode(data []byte) (v T, err error) { return c.decodeWith(data, c.readBody) }

// decodeWith is Decode reading a record of the current schema with readBody (nil: hamba/avro).
func (c *Codec[T]) decodeWith(data []byte, readBody func([]byte, *T) error) (v T, err error) {
	defer func() {
		if r := recover(); r != nil { // the decoder should not panic; a poison record must not crash us if it does
			err = fmt.Errorf("decode %s: %v", c.name(), r)
		}
	}()
	if readBody != nil && bytes.HasPrefix(data, c.header) {
		if err := readBody(data[len(c.header):], &v); err != nil {
			return v, fmt.Errorf("decode %s: %w", c.name(), err)
		}
		return v, nil
	}
	decode := func(into any) error { return c.decodeInto(data, into) }
	if c.fromWire != nil {
		if v, err = c.fromWire(decode); err != nil {
			return v, fmt.Errorf("decode %s: %w", c.name(), err)
		}
		return v, nil
	}
	if err := decode(&v); err != nil {
		return v, fmt.Errorf("decode %s: %w", c.name(), err)
	}
	return v, nil
}

// decodeInto decodes data written with the current schema or one of its previous versions.
func (c *Codec[T]) decodeInto(data []byte, into any) error {
	for _, o := range c.older {
		if bytes.HasPrefix(data, o.header) {
			return decodeAPI.Unmarshal(o.resolved, data[len(o.header):], into)
		}
	}
	return c.soe.Decode(data, into)
}

// Is reports whether data was written with this codec's schema or one of its previous versions.
func (c *Codec[T]) Is(data []byte) bool {
	if bytes.HasPrefix(data, c.header) {
		return true
	}
	for _, o := range c.older {
		if bytes.HasPrefix(data, o.header) {
			return true
		}
	}
	return false
}

func (c *Codec[T]) name() string {
	if n, ok := c.schema.(avro.NamedSchema); ok {
		return n.Name()
	}
	return "record"
}

// ErrUnknownSchema is returned for bytes that no tollgate schema wrote.
var ErrUnknownSchema = errors.New("record is not in a known tollgate schema")
