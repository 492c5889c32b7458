package schemas

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// An event written before consent_signals existed (schema version 1, still on
// tg.events.raw during an upgrade) decodes with the current codec, Signals nil.
func TestEventsReadVersion1(t *testing.T) {
	v1 := newCodec[eventV1](eventSchemaV1)
	consent := map[string]bool{"analytics": true}
	b, err := v1.Encode(&eventV1{EventID: "e1", Event: "Page", TimestampMs: 5, UserID: "u", Consent: &consent,
		Context: map[string]string{"ip": `"1.2.3.4"`}, Properties: map[string]string{}})
	require.NoError(t, err)
	require.True(t, Events.Is(b))
	e, err := Events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, "e1", e.EventID)
	require.Equal(t, map[string]bool{"analytics": true}, e.Consent)
	require.Nil(t, e.Signals)
}

func TestEventSignalsRoundTrip(t *testing.T) {
	in := Event{EventID: "e2", Event: "x", Context: map[string]string{}, Properties: map[string]string{},
		Signals: &ConsentSignals{TCF: "CO", GPP: "DBABBgA~xlgWEYCZAA", GPPSID: []int{8}, GCM: map[string]string{"ad_storage": "denied"},
			CMPAllowed: []string{"C0001"}, CMPDenied: []string{}, CMPHasDenied: true, CMPAny: true}}
	b, err := Events.Encode(&in)
	require.NoError(t, err)
	out, err := Events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, in.Signals, out.Signals)
}

type eventV1 struct {
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
}

// A decision written before consent_source existed decodes with both empty.
func TestDecisionsReadVersion1(t *testing.T) {
	v1 := newCodec[Decision](decisionSchemaV1) // hamba/avro writes only the fields version 1 has
	b, err := v1.Encode(&Decision{DecisionID: "d", EventID: "e", Outcome: "forwarded", FieldsSent: []string{"user_id"}, FieldsStripped: []string{}})
	require.NoError(t, err)
	d, err := Decisions.Decode(b)
	require.NoError(t, err)
	require.Equal(t, "d", d.DecisionID)
	require.Equal(t, []string{"user_id"}, d.FieldsSent)
	require.Empty(t, d.ConsentSource)
	require.Empty(t, d.ConsentProof)
}

// A filtered event written before vendor_consent existed (a topic's backlog during an upgrade)
// decodes with no vendor consent fields; the adapters then fall back to the consent map.
func TestFilteredEventsReadVersion1(t *testing.T) {
	v1 := newCodec[FilteredEvent](filteredEventSchemaV1)
	b, err := v1.Encode(&FilteredEvent{EventID: "e", Consent: map[string]bool{"marketing": true},
		VendorConsent: map[string]bool{VendorAdUserData: true}})
	require.NoError(t, err)
	f, err := FilteredEvents.Decode(b)
	require.NoError(t, err)
	require.Equal(t, "e", f.EventID)
	require.Equal(t, map[string]bool{"marketing": true}, f.Consent)
	require.Empty(t, f.VendorConsent, "version 1 has no vendor_consent; what the writer's struct held must not appear")
}

// A decision set written before held_ms (version 1, on tg.audit.decisions during an upgrade)
// decodes with HeldMs 0, through the codec and the audit writer's DecodeDecisions.
func TestDecisionSetsReadVersion1(t *testing.T) {
	v1 := newCodec[DecisionSet](decisionSetSchemaV1) // hamba/avro writes only the fields version 1 has
	b, err := v1.Encode(&DecisionSet{EventID: "e", UserKey: "u", Destinations: []DestinationDecision{
		{DecisionID: "d", Destination: "ga4", Outcome: "forwarded", FieldsSent: []string{"user_id"}, FieldsStripped: []string{}, HeldMs: 7}}})
	require.NoError(t, err)
	require.True(t, DecisionSets.Is(b))
	s, err := DecisionSets.Decode(b)
	require.NoError(t, err)
	require.Equal(t, "d", s.Destinations[0].DecisionID)
	require.Zero(t, s.Destinations[0].HeldMs, "version 1 has no held_ms")
	ds, err := DecodeDecisions(nil, b)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "ga4", ds[0].Destination)
	require.Equal(t, "u", ds[0].UserKey)
	require.Zero(t, ds[0].HeldMs)
}
