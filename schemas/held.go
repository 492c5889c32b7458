package schemas

import _ "embed"

//go:embed held_events.avsc
var heldEventsSchema string

// HeldEvents is a user's events held for their consent choice, in arrival order
// (held_events.avsc): references to the raw topic, never the events' fields, so no raw value of
// a hashed field reaches this changelog.
type HeldEvents struct {
	UserKey string      `avro:"user_key"`
	Events  []HeldEvent `avro:"events"`
}

// HeldEvent is one held event: its raw offset, when it was held and the destinations waiting.
type HeldEvent struct {
	Offset       int64    `avro:"offset"`
	ArrivedMs    int64    `avro:"arrived_ms"`
	Destinations []string `avro:"destinations"`
}

// HeldEventsCodec reads and writes HeldEvents (a few records per user who has not chosen yet:
// hamba/avro, no hand codec).
var HeldEventsCodec = newCodec[HeldEvents](heldEventsSchema)
