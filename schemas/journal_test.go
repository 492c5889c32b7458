package schemas

import (
	"fmt"
	"math"
	"strings"
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

// journalCases are journal records at the edges of the encoding: no request, a request with no
// event, extreme numbers, non-ASCII strings, and arrays past hamba/avro's block of 100 items (a
// round of many requests, a request of many events).
func journalCases() []JournalRecord {
	full := JournalRecord{Destination: "meta-ü", Writer: "w-1", AtMs: math.MaxInt64, Requests: []JournalRequest{
		{Kind: JournalIntent, RequestID: "r1", Source: "main", Partition: math.MaxInt32, AtMs: math.MinInt64, Events: []JournalEvent{
			{EventID: "e1", DecidedMs: -1, Attempt: math.MaxInt32, RunID: "run"}}},
		{Kind: JournalOutcome, RequestID: "r2", Source: "retry", Partition: PartitionOfRecord, AtMs: 1, HTTPStatus: 503, LatencyMs: 30000,
			Resend: true, Events: []JournalEvent{{EventID: "e2", Status: "in_doubt", Error: strings.Repeat("ü", 100), Attempt: math.MinInt32}}},
		{Kind: JournalOutcome, RequestID: "r3", Events: []JournalEvent{}},
	}}
	many := JournalRecord{Destination: "ga4", Writer: "w", AtMs: 1, Requests: []JournalRequest{}}
	for i := range 120 {
		many.Requests = append(many.Requests, JournalRequest{Kind: JournalIntent, RequestID: fmt.Sprint("r", i), Source: "main",
			Events: []JournalEvent{{EventID: fmt.Sprint("e", i), DecidedMs: int64(i)}}})
	}
	big := JournalRecord{Destination: "meta", Writer: "w", Requests: []JournalRequest{{Kind: JournalOutcome, RequestID: "r", Events: []JournalEvent{}}}}
	for i := range 130 {
		big.Requests[0].Events = append(big.Requests[0].Events, JournalEvent{EventID: fmt.Sprintf("event-%04d", i), DecidedMs: 1 << 40, Attempt: 1, Status: "delivered"})
	}
	return []JournalRecord{{Requests: []JournalRequest{}}, full, many, big}
}

// TestJournalMatchesHamba: the hand encoder writes hamba/avro's bytes from journal.avsc, the
// hand decoder reads back hamba/avro's answer, every truncation is refused. A field added to the
// schema and not to the hand codec fails here.
func TestJournalMatchesHamba(t *testing.T) {
	cases := journalCases()
	checkCodec(t, Journal.current, cases)
	for _, j := range cases {
		require.Equal(t, journalSize(&j), len(appendJournal(nil, &j)), "size of %s", j.Destination)
	}
}

// FuzzReadJournal: on any bytes the hand decoder neither panics nor disagrees with hamba/avro
// when both accept them.
func FuzzReadJournal(f *testing.F) {
	for _, j := range journalCases()[:2] {
		b, err := Journal.Encode(&j)
		require.NoError(f, err)
		f.Add(b[len(Journal.current.header):])
	}
	f.Fuzz(func(t *testing.T, body []byte) { fuzzAgainstHamba(t, Journal.current, body) })
}

func BenchmarkJournal(b *testing.B) {
	j := journalCases()[3]
	data, err := Journal.Encode(&j)
	require.NoError(b, err)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Journal.Encode(&j); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Journal.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
