package schemas

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// filteredEventCases are FilteredEvents at the edges of the encoding: empty maps, one entry,
// extreme numbers and long strings, many entries (several map blocks are not written by either
// encoder, but the reader takes them: see the fuzz seeds).
func filteredEventCases() map[string]FilteredEvent {
	base := FilteredEvent{EventID: "e-1", DecisionID: "d-1", Destination: "meta", Event: "purchase", TimestampMs: 1795000000000,
		DecidedMs: -5, UserKey: "u-ü", Purpose: "marketing", Jurisdiction: "EU", GPC: true, PolicyVersion: "v1", RunID: "r"}
	one := base
	one.Consent, one.Fields = map[string]bool{"marketing": true}, map[string]string{"context.page_url": `"https://x/é"`}
	one.VendorConsent = map[string]bool{VendorLimitedDataUse: true}
	extremes := one
	extremes.TimestampMs, extremes.DecidedMs, extremes.EventID, extremes.RunID = math.MaxInt64, math.MinInt64, strings.Repeat("x", 300), ""
	many := one
	many.Consent, many.Fields, many.VendorConsent = map[string]bool{}, map[string]string{}, map[string]bool{}
	for i := range 40 {
		many.Consent[fmt.Sprint("p", i)] = i%2 == 0
		many.Fields[fmt.Sprint("properties.f", i)] = fmt.Sprint(i * 1000)
		many.VendorConsent[fmt.Sprint("v", i)] = i%3 == 0
	}
	return map[string]FilteredEvent{"empty maps": base, "one entry each": one, "extremes": extremes, "many": many}
}

// TestReadFilteredEventMatches: the hand decoder reads what hamba/avro reads, field by field, so
// a field added to filtered_event.avsc and not to readFilteredEvent fails here.
func TestReadFilteredEventMatches(t *testing.T) {
	for name, ev := range filteredEventCases() {
		t.Run(name, func(t *testing.T) {
			b, err := FilteredEvents.Encode(&ev)
			require.NoError(t, err)
			var want FilteredEvent
			require.NoError(t, FilteredEvents.soe.Decode(b, &want))
			got, err := FilteredEvents.Decode(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestReadFilteredEventRefusesTruncatedRecords(t *testing.T) {
	ev := filteredEventCases()["one entry each"]
	b, err := FilteredEvents.Encode(&ev)
	require.NoError(t, err)
	for n := len(FilteredEvents.header); n < len(b); n++ {
		_, err := FilteredEvents.Decode(b[:n])
		require.Error(t, err, "cut at %d of %d bytes", n, len(b))
	}
}

// FuzzReadFilteredEvent: on any bytes the hand decoder neither panics nor disagrees with
// hamba/avro when both accept them.
func FuzzReadFilteredEvent(f *testing.F) {
	for _, ev := range filteredEventCases() {
		b, err := FilteredEvents.Encode(&ev)
		require.NoError(f, err)
		f.Add(b[len(FilteredEvents.header):])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got FilteredEvent
		if err := readFilteredEvent(body, &got); err != nil {
			return
		}
		var want FilteredEvent
		data := append(append([]byte{}, FilteredEvents.header...), body...)
		if err := FilteredEvents.soe.Decode(data, &want); err != nil {
			return
		}
		require.Equal(t, want, got)
	})
}

func BenchmarkDecodeFilteredEvent(b *testing.B) {
	ev := filteredEventCases()["one entry each"]
	data, err := FilteredEvents.Encode(&ev)
	require.NoError(b, err)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := FilteredEvents.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v FilteredEvent
			if err := FilteredEvents.soe.Decode(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// eventCases are Events at the edges: no consent object (null) and an empty one, no signals and
// every signal, extreme numbers.
func eventCases() map[string]Event {
	base := Event{EventID: "e1", Event: "purchase", TimestampMs: 1, ReceivedMs: 2, UserID: "u", AnonymousID: "a",
		Jurisdiction: "EU", GPC: true, Context: map[string]string{"page_url": `"https://x"`}, Properties: map[string]string{"v": "1.5"}}
	emptyConsent := base
	emptyConsent.Consent, emptyConsent.Context, emptyConsent.Properties = map[string]bool{}, map[string]string{}, map[string]string{}
	signals := base
	signals.Consent = map[string]bool{"marketing": false, "analytics": true}
	signals.Signals = &ConsentSignals{TCF: "CP", GPP: "DB", GPPSID: []int{7, 8, math.MaxInt32}, GCM: map[string]string{"ad_storage": "granted"},
		CMPAllowed: []string{"C0001", "C0002"}, CMPDenied: []string{}, CMPHasDenied: true, CMPAny: true}
	extremes := signals
	extremes.TimestampMs, extremes.ReceivedMs, extremes.EventID = math.MinInt64, math.MaxInt64, strings.Repeat("é", 200)
	extremes.Signals = &ConsentSignals{GPPSID: []int{math.MinInt32}, GCM: map[string]string{}, CMPAllowed: []string{}, CMPDenied: []string{"x"}}
	return map[string]Event{"no consent": base, "empty consent": emptyConsent, "signals": signals, "extremes": extremes}
}

// TestReadEventMatches: the hand decoder reads what hamba/avro reads (through the codec's wire
// type), so a field added to event.avsc and not to readEvent fails here.
func TestReadEventMatches(t *testing.T) {
	for name, ev := range eventCases() {
		t.Run(name, func(t *testing.T) {
			b, err := Events.Encode(&ev)
			require.NoError(t, err)
			want, err := eventFromWire(func(into any) error { return Events.soe.Decode(b, into) })
			require.NoError(t, err)
			got, err := Events.Decode(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
			for n := len(Events.header); n < len(b); n++ {
				_, err := Events.Decode(b[:n])
				require.Error(t, err, "cut at %d of %d bytes", n, len(b))
			}
		})
	}
}

// TestDecodeEventHeadMatches: the head is the whole event but its context and properties, and
// refuses what the whole decoder refuses (a truncated record).
func TestDecodeEventHeadMatches(t *testing.T) {
	for name, ev := range eventCases() {
		t.Run(name, func(t *testing.T) {
			b, err := Events.Encode(&ev)
			require.NoError(t, err)
			want, err := Events.Decode(b)
			require.NoError(t, err)
			want.Context, want.Properties = nil, nil
			got, err := DecodeEventHead(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
			for n := len(Events.header); n < len(b); n++ {
				_, err := DecodeEventHead(b[:n])
				require.Error(t, err, "cut at %d of %d bytes", n, len(b))
			}
		})
	}
}

// FuzzReadEvent: on any bytes the hand decoder neither panics nor disagrees with hamba/avro when
// both accept them.
func FuzzReadEvent(f *testing.F) {
	for _, ev := range eventCases() {
		b, err := Events.Encode(&ev)
		require.NoError(f, err)
		f.Add(b[len(Events.header):])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got Event
		if err := readEvent(body, &got); err != nil {
			return
		}
		data := append(append([]byte{}, Events.header...), body...)
		want, err := eventFromWire(func(into any) error { return Events.soe.Decode(data, into) })
		if err != nil {
			return
		}
		require.Equal(t, want, got)
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	ev := eventCases()["signals"]
	data, err := Events.Encode(&ev)
	require.NoError(b, err)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Events.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := eventFromWire(func(into any) error { return Events.soe.Decode(data, into) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
