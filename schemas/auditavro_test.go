package schemas

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// auditCases are records at the edges of their encodings: zero values, extreme numbers, long
// and non-ASCII strings, empty and full arrays.
var (
	deliveryCases = []Delivery{{}, {EventID: "e-ü", Destination: "meta", Attempt: 3, Status: "delivered", HTTPStatus: 200,
		Error: strings.Repeat("x", 300), LatencyMs: math.MaxInt64, AtMs: math.MinInt64, DeliveryID: "d", RunID: "r-1"},
		{Attempt: math.MaxInt32, HTTPStatus: math.MinInt32}}
	ledgerCases   = []LedgerEntry{{}, {EventID: "e", DecidedMs: -1, DeliveredMs: math.MaxInt64, Attempt: math.MaxInt32}}
	decisionCases = []Decision{{FieldsSent: []string{}, FieldsStripped: []string{}}, {DecisionID: "d", EventID: "e", UserKey: "u-ü",
		Destination: "ga4", EventName: "purchase", EventTimeMs: math.MinInt64, DecidedMs: math.MaxInt64, Outcome: "blocked",
		Reason: "no_consent", Purpose: "analytics", Jurisdiction: "US-CA", GPC: true, FieldsSent: []string{"a", strings.Repeat("b", 200)},
		FieldsStripped: []string{"c"}, PolicyVersion: "v", RunID: "r", ConsentSource: "gcm,tcf", ConsentProof: "ab"}}
)

// checkCodec: the hand encoder writes hamba/avro's bytes, the hand decoder reads hamba/avro's
// answer back, and every truncation of the record is refused.
func checkCodec[T any](t *testing.T, c *Codec[T], cases []T) {
	t.Helper()
	for _, v := range cases {
		want, err := c.soe.Encode(&v)
		require.NoError(t, err)
		got, err := c.Encode(&v)
		require.NoError(t, err)
		require.Equal(t, want, got, "%+v", v)
		var hamba T
		require.NoError(t, c.soe.Decode(want, &hamba))
		back, err := c.Decode(want)
		require.NoError(t, err)
		require.Equal(t, hamba, back)
		for n := len(c.header); n < len(want); n++ {
			_, err := c.Decode(want[:n])
			require.Error(t, err, "cut at %d of %d bytes", n, len(want))
		}
	}
}

func TestAuditRecordsMatchHamba(t *testing.T) {
	checkCodec(t, Deliveries, deliveryCases)
	checkCodec(t, LedgerEntries, ledgerCases)
	checkCodec(t, Decisions, decisionCases)
}

// fuzzAgainstHamba: on any bytes the hand decoder neither panics nor disagrees with hamba/avro
// when both accept them.
func fuzzAgainstHamba[T any](t *testing.T, c *Codec[T], body []byte) {
	var got T
	if err := c.readBody(body, &got); err != nil {
		return
	}
	var want T
	if err := c.soe.Decode(append(append([]byte{}, c.header...), body...), &want); err != nil {
		return
	}
	require.Equal(t, want, got)
}

func FuzzReadAuditRecords(f *testing.F) {
	seed := func(b []byte, err error, header []byte) {
		require.NoError(f, err)
		f.Add(b[len(header):])
	}
	for _, v := range deliveryCases {
		b, err := Deliveries.Encode(&v)
		seed(b, err, Deliveries.header)
	}
	for _, v := range ledgerCases {
		b, err := LedgerEntries.Encode(&v)
		seed(b, err, LedgerEntries.header)
	}
	for _, v := range decisionCases {
		b, err := Decisions.Encode(&v)
		seed(b, err, Decisions.header)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzAgainstHamba(t, Deliveries, body)
		fuzzAgainstHamba(t, LedgerEntries, body)
		fuzzAgainstHamba(t, Decisions, body)
	})
}
