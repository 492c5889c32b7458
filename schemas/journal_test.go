package schemas

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJournalRoundTrip(t *testing.T) {
	in := JournalRecord{Destination: "ga4", Writer: "w", AtMs: 5, Requests: []JournalRequest{
		{Kind: JournalIntent, RequestID: "r2", Source: "main", Partition: 3, AtMs: 4,
			Events: []JournalEvent{{EventID: "e3", DecidedMs: 3, Attempt: 1, RunID: "run"}}},
		{Kind: JournalOutcome, RequestID: "r1", Source: "retry", Partition: 0, AtMs: 5, HTTPStatus: 200, LatencyMs: 7, Resend: true,
			Events: []JournalEvent{{EventID: "e1", DecidedMs: 3, Attempt: 1, Status: "delivered"}, {EventID: "e2", Status: "in_doubt", Error: "timeout"}}},
	}}
	b, err := Journal.Encode(&in)
	require.NoError(t, err)
	require.True(t, Journal.Is(b))
	require.False(t, LedgerEntries.Is(b))
	out, err := Journal.Decode(b)
	require.NoError(t, err)
	require.Equal(t, in, out)
	old, err := LedgerEntries.Encode(&LedgerEntry{EventID: "e"})
	require.NoError(t, err)
	require.False(t, Journal.Is(old))
}

// A version 1 record (one intent or outcome, on its events' partition) reads as a record of
// one request whose partition is the Kafka record's own.
func TestJournalReadsVersion1(t *testing.T) {
	v1 := JournalRecordV1{Kind: JournalOutcome, RequestID: "r1", Destination: "ga4", Source: "main", Writer: "w",
		AtMs: 5, HTTPStatus: 204, LatencyMs: 7, Resend: true,
		Events: []JournalEvent{{EventID: "e1", DecidedMs: 3, Attempt: 1, Status: "delivered"}}}
	b, err := JournalV1.Encode(&v1)
	require.NoError(t, err)
	require.True(t, Journal.Is(b))
	out, err := Journal.Decode(b)
	require.NoError(t, err)
	require.Equal(t, JournalRecord{Destination: "ga4", Writer: "w", AtMs: 5, Requests: []JournalRequest{{Kind: JournalOutcome,
		RequestID: "r1", Source: "main", Partition: PartitionOfRecord, AtMs: 5, HTTPStatus: 204, LatencyMs: 7, Resend: true, Events: v1.Events}}}, out)
	require.Equal(t, []Delivery{{EventID: "e1", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 7, AtMs: 5,
		DeliveryID: "r1/e1"}}, out.Deliveries())
}

func TestJournalDeliveries(t *testing.T) {
	r := JournalRecord{Destination: "ga4", AtMs: 10, Requests: []JournalRequest{
		{Kind: JournalIntent, RequestID: "r0", Events: []JournalEvent{{EventID: "e0", Attempt: 1}}},
		{Kind: JournalOutcome, RequestID: "r1", AtMs: 9, HTTPStatus: 0, LatencyMs: 30000,
			Events: []JournalEvent{{EventID: "e1", Attempt: 2, Status: "in_doubt", Error: "timeout"}, {EventID: "e2", Attempt: 1, Status: JournalStatusUnsent}}},
		{Kind: JournalOutcome, RequestID: "r2", AtMs: 8, HTTPStatus: 204, LatencyMs: 3, Events: []JournalEvent{{EventID: "e3", Attempt: 1, Status: "delivered", RunID: "x"}}},
	}}
	require.Equal(t, []Delivery{
		{EventID: "e1", Destination: "ga4", Attempt: 2, Status: "in_doubt", Error: "timeout", LatencyMs: 30000, AtMs: 9, DeliveryID: "r1/e1"},
		{EventID: "e3", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 3, AtMs: 8, DeliveryID: "r2/e3", RunID: "x"},
	}, r.Deliveries())
	r.Requests = r.Requests[:1]
	require.Empty(t, r.Deliveries())
}
