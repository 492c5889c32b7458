package schemas

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJournalRoundTrip(t *testing.T) {
	in := JournalRecord{Kind: JournalOutcome, RequestID: "r1", Destination: "ga4", Source: "main", Writer: "w",
		AtMs: 5, HTTPStatus: 200, LatencyMs: 7, Resend: true,
		Events: []JournalEvent{{EventID: "e1", DecidedMs: 3, Attempt: 1, Status: "delivered"}, {EventID: "e2", Status: "in_doubt", Error: "timeout"}}}
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

func TestJournalDeliveries(t *testing.T) {
	r := JournalRecord{Kind: JournalOutcome, RequestID: "r1", Destination: "ga4", AtMs: 9, HTTPStatus: 0, LatencyMs: 30000,
		Events: []JournalEvent{{EventID: "e1", Attempt: 2, Status: "in_doubt", Error: "timeout"}, {EventID: "e2", Attempt: 1, Status: JournalStatusUnsent}}}
	require.Equal(t, []Delivery{{EventID: "e1", Destination: "ga4", Attempt: 2, Status: "in_doubt", Error: "timeout", LatencyMs: 30000, AtMs: 9, DeliveryID: "r1/e1"}},
		r.Deliveries())
	r.Kind = JournalIntent
	require.Empty(t, r.Deliveries())
}
