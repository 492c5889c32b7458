package schemas

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// decisionSetCases are decision sets at the edges of the encoding: no destination, one with
// empty lists, several with full lists, extreme numbers, long and non-ASCII strings.
func decisionSetCases() []DecisionSet {
	full := DecisionSet{EventID: "e-ü", UserKey: "u-1", EventName: "purchase", EventTimeMs: math.MinInt64, DecidedMs: math.MaxInt64,
		Jurisdiction: "US-CA", GPC: true, PolicyVersion: "v", RunID: "r", ConsentProof: strings.Repeat("ab", 32),
		Destinations: []DestinationDecision{
			{DecisionID: "d1", Destination: "ga4", Outcome: "forwarded", Reason: "consented", Purpose: "analytics",
				FieldsSent: []string{"context.page_url", strings.Repeat("p", 200)}, FieldsStripped: []string{"properties.email"}, ConsentSource: "gcm,tcf", HeldMs: 1200},
			{DecisionID: "d2", Destination: "meta", Outcome: "blocked", Reason: "gpc", Purpose: "marketing",
				FieldsSent: []string{}, FieldsStripped: []string{"context.page_url", "properties.email"}, ConsentSource: "gpc"},
			{DecisionID: "d3", Destination: "ops", Outcome: "forwarded", Reason: "necessary", Purpose: "necessary",
				FieldsSent: []string{}, FieldsStripped: []string{}, HeldMs: math.MaxInt64},
		}}
	many := full
	many.Destinations = nil
	for i := range 70 { // an array block size past one byte's varint
		many.Destinations = append(many.Destinations, DestinationDecision{DecisionID: fmt.Sprint("d", i), Destination: fmt.Sprint("dest", i),
			FieldsSent: []string{"a"}, FieldsStripped: []string{}})
	}
	return []DecisionSet{{Destinations: []DestinationDecision{}}, {EventID: "e", Destinations: []DestinationDecision{{FieldsSent: []string{}, FieldsStripped: []string{}}}}, full, many}
}

// TestDecisionSetMatchesHamba: the hand encoder writes hamba/avro's bytes from
// decision_set.avsc, the hand decoder reads back hamba/avro's answer, every truncation is
// refused. A field added to the schema and not to the hand codec fails here.
func TestDecisionSetMatchesHamba(t *testing.T) {
	cases := decisionSetCases()
	checkCodec(t, DecisionSets, cases)
	for _, s := range cases {
		require.Equal(t, decisionSetSize(&s), len(appendDecisionSet(nil, &s)), "size of %s", s.EventID)
		b, err := DecisionSets.Encode(&s)
		require.NoError(t, err)
		got, err := DecodeDecisions(nil, b)
		require.NoError(t, err)
		require.Equal(t, s.AppendDecisions(nil), got)
		for n := len(DecisionSets.header); n < len(b); n++ {
			got, err := DecodeDecisions(nil, b[:n])
			require.Error(t, err, "cut at %d of %d bytes", n, len(b))
			require.Empty(t, got)
		}
	}
}

// TestDecisionSetGivesBackItsDecisions: a set built from an event's decisions gives back exactly
// those decisions, through an encoding and decoding too, so the audit rows of a set are the rows
// of the per-destination records the processor wrote before.
func TestDecisionSetGivesBackItsDecisions(t *testing.T) {
	ds := []Decision{
		{DecisionID: "d1", EventID: "e", UserKey: "u", Destination: "ga4", EventName: "purchase", EventTimeMs: 1, DecidedMs: 2,
			Outcome: "forwarded", Reason: "consented", Purpose: "analytics", Jurisdiction: "EU", GPC: true,
			FieldsSent: []string{"a"}, FieldsStripped: []string{"b"}, PolicyVersion: "v", RunID: "r", ConsentSource: "tcf", ConsentProof: "p"},
		{DecisionID: "d2", EventID: "e", UserKey: "u", Destination: "meta", EventName: "purchase", EventTimeMs: 1, DecidedMs: 2,
			Outcome: "blocked", Reason: "no_consent", Purpose: "marketing", Jurisdiction: "EU", GPC: true,
			FieldsSent: []string{}, FieldsStripped: []string{"a", "b"}, PolicyVersion: "v", RunID: "r", ConsentSource: "", ConsentProof: "p"},
	}
	var s DecisionSet
	for i := range ds {
		require.NoError(t, s.Add(&ds[i]))
	}
	require.Equal(t, ds, s.AppendDecisions(nil))
	b, err := DecisionSets.Encode(&s)
	require.NoError(t, err)
	got, err := DecodeDecisions([]Decision{{DecisionID: "before"}}, b)
	require.NoError(t, err)
	require.Equal(t, append([]Decision{{DecisionID: "before"}}, ds...), got)

	for _, change := range []func(d *Decision){
		func(d *Decision) { d.EventID = "other" }, func(d *Decision) { d.UserKey = "other" },
		func(d *Decision) { d.EventName = "other" }, func(d *Decision) { d.EventTimeMs++ }, func(d *Decision) { d.DecidedMs++ },
		func(d *Decision) { d.Jurisdiction = "other" }, func(d *Decision) { d.GPC = false },
		func(d *Decision) { d.PolicyVersion = "other" }, func(d *Decision) { d.RunID = "other" },
		func(d *Decision) { d.ConsentProof = "other" },
	} {
		other := ds[1]
		change(&other)
		require.ErrorIs(t, s.Add(&other), ErrMixedDecisions)
	}
	require.Len(t, s.Destinations, 2, "a refused decision is not added")
}

// TestDecodeDecisionsReadsOldRecords: a per-destination Decision (both versions) still reads as
// its one decision, and anything else is an error that leaves dst alone.
func TestDecodeDecisionsReadsOldRecords(t *testing.T) {
	d := decisionCases[1]
	b, err := Decisions.Encode(&d)
	require.NoError(t, err)
	got, err := DecodeDecisions(nil, b)
	require.NoError(t, err)
	require.Equal(t, []Decision{d}, got)

	v1 := newCodec[Decision](decisionSchemaV1) // hamba/avro writes the fields version 1 has
	b, err = v1.Encode(&Decision{DecisionID: "d", EventID: "e", Destination: "meta", Outcome: "blocked", FieldsSent: []string{},
		FieldsStripped: []string{"x"}, RunID: "r", ConsentSource: "not in version 1"})
	require.NoError(t, err)
	got, err = DecodeDecisions(nil, b)
	require.NoError(t, err)
	require.Equal(t, []Decision{{DecisionID: "d", EventID: "e", Destination: "meta", Outcome: "blocked", FieldsSent: []string{}, FieldsStripped: []string{"x"}, RunID: "r"}}, got)

	del, err := Deliveries.Encode(&Delivery{EventID: "e"})
	require.NoError(t, err)
	for _, junk := range [][]byte{nil, {0xC3, 0x01}, del, DecisionSets.header, []byte("not avro")} {
		got, err := DecodeDecisions([]Decision{d}, junk)
		require.Error(t, err)
		require.Equal(t, []Decision{d}, got)
	}
	require.False(t, Decisions.Is(DecisionSets.header), "the two schemas have their own fingerprints")
}

// FuzzReadDecisionSet: on any bytes the hand decoder neither panics nor disagrees with
// hamba/avro when both accept them.
func FuzzReadDecisionSet(f *testing.F) {
	for _, s := range decisionSetCases() {
		b, err := DecisionSets.Encode(&s)
		require.NoError(f, err)
		f.Add(b[len(DecisionSets.header):])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzAgainstHamba(t, DecisionSets, body)
		// The writer's path (straight into decisions) reads what the set's reader reads.
		var s DecisionSet
		setErr := readDecisionSet(body, &s)
		before := []Decision{{DecisionID: "before"}}
		got, err := appendSetDecisions(before, body)
		if setErr != nil {
			require.Error(t, err)
			require.Equal(t, before, got)
			return
		}
		require.NoError(t, err)
		require.Equal(t, s.AppendDecisions(before), got)
	})
}

// FuzzDecodeDecisionSet: whatever the codec accepts encodes again and decodes to the same value.
func FuzzDecodeDecisionSet(f *testing.F) {
	fuzzCodec(f, DecisionSets, decisionSetCases()...)
}

func BenchmarkDecisionSet(b *testing.B) {
	s := decisionSetCases()[2]
	data, err := DecisionSets.Encode(&s)
	require.NoError(b, err)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecisionSets.Encode(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same event's decisions as the per-destination records written before sets.
	perDest := make([][]byte, 0, len(s.Destinations))
	for _, d := range s.AppendDecisions(nil) {
		v, err := Decisions.Encode(&d)
		require.NoError(b, err)
		perDest = append(perDest, v)
	}
	b.Run("encode-per-destination", func(b *testing.B) {
		b.ReportAllocs()
		ds := s.AppendDecisions(nil)
		for b.Loop() {
			for i := range ds {
				if _, err := Decisions.Encode(&ds[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode-per-destination", func(b *testing.B) {
		b.ReportAllocs()
		var ds []Decision
		for b.Loop() {
			ds = ds[:0]
			for _, v := range perDest {
				var err error
				if ds, err = DecodeDecisions(ds, v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var ds []Decision
		for b.Loop() {
			var err error
			if ds, err = DecodeDecisions(ds[:0], data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
