package schemas

import (
	"testing"
)

// fuzzCodec feeds hostile bytes to one codec's decoder without the panic guard of Decode, so a
// decoder panic fails the fuzz run instead of hiding as an error. Whatever it accepts must encode
// again and decode to the same value: a record the processor reads is a record it can write.
func fuzzCodec[T any](f *testing.F, c *Codec[T], seeds ...T) {
	for i := range seeds {
		b, err := c.Encode(&seeds[i])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xC3, 0x01})
	f.Add(append(append([]byte{}, c.header...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		var err error
		decode := func(into any) error { return c.decodeInto(data, into) }
		if c.fromWire != nil {
			v, err = c.fromWire(decode)
		} else {
			err = decode(&v)
		}
		if err != nil {
			return
		}
		b, err := c.Encode(&v)
		if err != nil {
			t.Fatalf("accepted a record it cannot encode again: %v", err)
		}
		if _, err := c.Decode(b); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

func FuzzDecodeEventNoRecover(f *testing.F) {
	fuzzCodec(f, Events, Event{EventID: "e", Event: "x", UserID: "u", Consent: map[string]bool{"a": true},
		Context: map[string]string{"page_url": `"https://x"`}, Properties: map[string]string{"v": "1"}})
}

func FuzzDecodeConsentUpdate(f *testing.F) {
	fuzzCodec(f, ConsentUpdates, ConsentUpdate{UpdateID: "c", UserKey: "u", Consent: map[string]bool{"analytics": true}, TimestampMs: 3, Erased: true})
}

func FuzzDecodeFilteredEvent(f *testing.F) {
	fuzzCodec(f, FilteredEvents, FilteredEvent{EventID: "e", DecisionID: "d", Destination: "meta",
		Consent: map[string]bool{"marketing": true}, Fields: map[string]string{"properties.email": `"ab"`}})
}

func FuzzDecodeDecision(f *testing.F) {
	fuzzCodec(f, Decisions, Decision{DecisionID: "d", Outcome: "blocked", FieldsSent: []string{"a"}, FieldsStripped: []string{"properties.email"}})
}

func FuzzDecodeDelivery(f *testing.F) {
	fuzzCodec(f, Deliveries, Delivery{EventID: "e", Attempt: 2, Status: "delivered", HTTPStatus: 200})
}

// Regression (FuzzDecodeDecision): a 40-byte record whose array block header claims ~10^10
// items made hamba/avro allocate ~1 TB up front and the process die with a fatal "out of
// memory", which no recover catches. It must be an ordinary decode error.
func TestDecodeHugeArrayCountIsAnError(t *testing.T) {
	data := []byte("\xc3\x01\xfb{&\x1a?p\xbf,\x02d\x00\x00\x00\x00\x00\x00\x0eblocked\x00\x00\x00\x00\xe9\xe9\xe9\xe9\"")
	if _, err := Decisions.Decode(data); err == nil {
		t.Fatal("decoded a record claiming billions of array items")
	}
}
