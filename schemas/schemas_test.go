package schemas

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func roundTrip[T any](t *testing.T, c *Codec[T], v T) {
	t.Helper()
	b, err := c.Encode(&v)
	require.NoError(t, err)
	require.Equal(t, []byte{0xC3, 0x01}, b[:2], "single-object encoding magic")
	require.True(t, c.Is(b))
	got, err := c.Decode(b)
	require.NoError(t, err)
	require.Equal(t, v, got)
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, Events, Event{EventID: "e1", Event: "purchase", TimestampMs: 1, ReceivedMs: 2, UserID: "u",
		Consent: map[string]bool{"marketing": false}, Jurisdiction: "EU", GPC: true,
		Context: map[string]string{"page_url": `"https://x"`}, Properties: map[string]string{"order_value": "1.5"}})
	roundTrip(t, Events, Event{EventID: "e2", Event: "page", AnonymousID: "a", Context: map[string]string{}, Properties: map[string]string{}})
	roundTrip(t, ConsentUpdates, ConsentUpdate{UpdateID: "c", UserKey: "u", Consent: map[string]bool{"analytics": true}, TimestampMs: 3, Erased: true})
	roundTrip(t, FilteredEvents, FilteredEvent{EventID: "e", DecisionID: "d", Destination: "meta", Consent: map[string]bool{}, Fields: map[string]string{"properties.email": `"ab"`}, VendorConsent: map[string]bool{}})
	roundTrip(t, Decisions, Decision{DecisionID: "d", Outcome: "blocked", FieldsSent: []string{}, FieldsStripped: []string{"properties.email"}})
	roundTrip(t, Deliveries, Delivery{EventID: "e", Attempt: 2, Status: "delivered", HTTPStatus: 200})
	roundTrip(t, Duplicates, Duplicate{EventID: "e", UserKey: "u", FirstSeenMs: 1, LastSeenMs: 2, Resends: 1})
}

func TestNoChoiceStaysNil(t *testing.T) {
	b, err := Events.Encode(&Event{EventID: "e", Event: "x", UserID: "u"})
	require.NoError(t, err)
	got, err := Events.Decode(b)
	require.NoError(t, err)
	require.Nil(t, got.Consent, "an event without a consent object made no choice")
}

func TestDecodeRefusesOtherSchemasAndGarbage(t *testing.T) {
	b, err := Deliveries.Encode(&Delivery{EventID: "e"})
	require.NoError(t, err)
	_, err = Events.Decode(b)
	require.Error(t, err)
	for _, junk := range [][]byte{nil, {0xC3}, {0xC3, 0x01, 1, 2}, []byte("not avro at all")} {
		_, err := Decisions.Decode(junk)
		require.Error(t, err)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	b, _ := Events.Encode(&Event{EventID: "e", Event: "x", Consent: map[string]bool{"a": true}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Events.Decode(data) // must not panic or hang
	})
}

// A delivery record written before delivery_id existed (schema version 1, still on the audit
// topic during an upgrade) decodes with the current codec, delivery_id empty.
func TestDeliveriesReadVersion1(t *testing.T) {
	v1 := newCodec[deliveryV1](deliverySchemaV1)
	b, err := v1.Encode(&deliveryV1{EventID: "e1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 7, AtMs: 1000})
	require.NoError(t, err)
	require.True(t, Deliveries.Is(b))
	d, err := Deliveries.Decode(b)
	require.NoError(t, err)
	require.Equal(t, Delivery{EventID: "e1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 7, AtMs: 1000}, d)
	require.False(t, Decisions.Is(b))
}

// A delivery record of version 2 (before run_id) decodes with run_id empty: live traffic.
func TestDeliveriesReadVersion2(t *testing.T) {
	v2 := newCodec[deliveryV2](deliverySchemaV2)
	b, err := v2.Encode(&deliveryV2{deliveryV1{EventID: "e1", Destination: "meta", Attempt: 1, Status: "delivered"}, "d1"})
	require.NoError(t, err)
	d, err := Deliveries.Decode(b)
	require.NoError(t, err)
	require.Equal(t, Delivery{EventID: "e1", Destination: "meta", Attempt: 1, Status: "delivered", DeliveryID: "d1"}, d)
	roundTrip(t, Deliveries, Delivery{EventID: "e", Status: "delivered", DeliveryID: "d", RunID: "run-1"})
}

type deliveryV2 struct {
	deliveryV1
	DeliveryID string `avro:"delivery_id"`
}

type deliveryV1 struct {
	EventID     string `avro:"event_id"`
	Destination string `avro:"destination"`
	Attempt     int    `avro:"attempt"`
	Status      string `avro:"status"`
	HTTPStatus  int    `avro:"http_status"`
	Error       string `avro:"error"`
	LatencyMs   int64  `avro:"latency_ms"`
	AtMs        int64  `avro:"at_ms"`
}

// MustEncode returns what Encode returns, and panics where Encode would fail instead of letting
// a caller drop the error.
func TestMustEncode(t *testing.T) {
	d := Duplicate{EventID: "e1", Resends: 2}
	want, err := Duplicates.Encode(&d)
	require.NoError(t, err)
	require.Equal(t, want, Duplicates.MustEncode(&d))

	broken := newCodec[Duplicate](duplicateSchema)
	broken.toWire = func(*Duplicate) any { return make(chan int) } // nothing Avro can write
	_, err = broken.Encode(&d)
	require.Error(t, err)
	require.Panics(t, func() { broken.MustEncode(&d) })
}
