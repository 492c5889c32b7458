package schemas

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendEventMatchesSchema: the hand encoder writes what hamba/avro writes from event.avsc,
// byte for byte where map order cannot differ (at most one entry per map), and what hamba/avro
// decodes back to the same event otherwise. A field added to the schema and not to appendEvent
// fails here.
func TestAppendEventMatchesSchema(t *testing.T) {
	base := Event{EventID: "e-1", Event: "purchase", TimestampMs: 1795000000000, ReceivedMs: -5, UserID: "u-ü",
		Jurisdiction: "EU", GPC: true}
	cases := map[string]Event{"no consent, no signals, empty maps": base}
	one := base
	one.AnonymousID = "a"
	one.Consent = map[string]bool{"marketing": true}
	one.Context, one.Properties = map[string]string{"page_url": `"https://x/é"`}, map[string]string{"value": "1.5"}
	one.Signals = &ConsentSignals{TCF: "CO", GPP: "DBABBgA~xlgWEYCZAA", GPPSID: []int{8}, GCM: map[string]string{"ad_storage": "granted"},
		CMPAllowed: []string{"C0002"}, CMPDenied: []string{"C0004"}, CMPHasDenied: true, CMPAny: true}
	cases["one entry each"] = one
	empty := base
	empty.Consent, empty.Signals = map[string]bool{}, &ConsentSignals{}
	cases["empty consent (a choice of nothing) and empty signals"] = empty
	extremes := one
	extremes.TimestampMs, extremes.ReceivedMs, extremes.EventID = math.MaxInt64, math.MinInt64, strings.Repeat("x", 300)
	extremes.Signals = &ConsentSignals{GPPSID: []int{-1, 0, 65535, math.MaxInt32, math.MinInt32}}
	cases["extremes"] = extremes
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := Events.soe.Encode(eventToWire(&ev))
			require.NoError(t, err)
			got, err := Events.Encode(&ev)
			require.NoError(t, err)
			require.Equal(t, want, got)
			back, err := Events.Decode(got)
			require.NoError(t, err)
			require.Equal(t, normalised(ev), back)
		})
	}
	many := one
	many.Consent, many.Context, many.Properties = map[string]bool{}, map[string]string{}, map[string]string{}
	many.Signals = &ConsentSignals{GCM: map[string]string{}}
	for i := range 40 {
		many.Consent[fmt.Sprint("p", i)] = i%2 == 0
		many.Context[fmt.Sprint("c", i)] = fmt.Sprint(`"`, i, `"`)
		many.Properties[fmt.Sprint("f", i)] = fmt.Sprint(i * 1000)
		many.Signals.GCM[fmt.Sprint("k", i)] = "denied"
		many.Signals.GPPSID = append(many.Signals.GPPSID, i*1000)
		many.Signals.CMPAllowed = append(many.Signals.CMPAllowed, fmt.Sprint("C", i))
	}
	b, err := Events.Encode(&many)
	require.NoError(t, err)
	back, err := Events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, normalised(many), back)
}

// normalised is ev as hamba/avro decodes it: nil maps and lists come back empty.
func normalised(ev Event) Event {
	if ev.Context == nil {
		ev.Context = map[string]string{}
	}
	if ev.Properties == nil {
		ev.Properties = map[string]string{}
	}
	if s := ev.Signals; s != nil {
		c := *s
		if c.GPPSID == nil {
			c.GPPSID = []int{}
		}
		if c.GCM == nil {
			c.GCM = map[string]string{}
		}
		if c.CMPAllowed == nil {
			c.CMPAllowed = []string{}
		}
		if c.CMPDenied == nil {
			c.CMPDenied = []string{}
		}
		ev.Signals = &c
	}
	return ev
}

// FuzzAppendEvent: for any event hamba/avro can decode, the hand encoder's bytes decode to the
// same event as hamba/avro's own encoding of it.
func FuzzAppendEvent(f *testing.F) {
	seed := Event{EventID: "e", Event: "x", UserID: "u", Consent: map[string]bool{"a": true},
		Context: map[string]string{"page_url": `"https://x"`}, Signals: &ConsentSignals{GPPSID: []int{7, 8}, CMPAny: true}}
	b, err := Events.soe.Encode(eventToWire(&seed))
	require.NoError(f, err)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := eventFromWire(func(into any) error { return Events.soe.Decode(data, into) })
		if err != nil {
			return
		}
		want, err := Events.soe.Encode(eventToWire(&ev))
		if err != nil {
			return // nothing hamba/avro would write
		}
		got, err := Events.Encode(&ev)
		require.NoError(t, err)
		var a, b Event
		a, err = eventFromWire(func(into any) error { return Events.soe.Decode(want, into) })
		require.NoError(t, err)
		b, err = eventFromWire(func(into any) error { return Events.soe.Decode(got, into) })
		require.NoError(t, err)
		require.Equal(t, a, b)
	})
}
