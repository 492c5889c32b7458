package schemas

import (
	"testing"
)

// benchCodec measures one encode and one decode of a typical record of the codec's type.
func benchCodec[T any](b *testing.B, c *Codec[T], v T) {
	enc, err := c.Encode(&v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := c.Encode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := c.Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchEvent is the shape of the sample traffic: a purchase with page context and six properties.
func benchEvent() Event {
	return Event{EventID: "0b6f8a2e-5d1c-4c1e-9d7b-6e5f4a3b2c1d", Event: "purchase", TimestampMs: 1795000000000, ReceivedMs: 1795000000100,
		UserID: "u-4242", AnonymousID: "a-7f3", Consent: map[string]bool{"necessary": true, "analytics": true, "marketing": false},
		Jurisdiction: "EU", GPC: false,
		Context: map[string]string{"page_url": `"https://shop.example/checkout"`, "user_agent": `"Mozilla/5.0 (X11; Linux x86_64)"`, "ip": `"203.0.113.9"`},
		Properties: map[string]string{"order_value": "149.0", "currency": `"EUR"`, "email": `"ann@example.com"`,
			"phone": `"+49 170 1234567"`, "fbclid": `"IwAR0abc"`, "session_id": `"s-1"`}}
}

func BenchmarkEvent(b *testing.B) { benchCodec(b, Events, benchEvent()) }

func BenchmarkConsentUpdate(b *testing.B) {
	benchCodec(b, ConsentUpdates, ConsentUpdate{UpdateID: "c-1", UserKey: "u-4242",
		Consent: map[string]bool{"analytics": true, "marketing": false}, TimestampMs: 1795000000000, NoticeVersion: "v3"})
}

func BenchmarkFilteredEvent(b *testing.B) {
	benchCodec(b, FilteredEvents, FilteredEvent{EventID: "0b6f8a2e-5d1c", DecisionID: "7f5e2c8b11016623", Destination: "meta",
		UserKey: "u-4242", Event: "purchase", TimestampMs: 1795000000000, DecidedMs: 1795000000200, Purpose: "marketing", Consent: map[string]bool{"marketing": true},
		Fields: map[string]string{"context.page_url": `"https://shop.example/checkout"`, "context.user_agent": `"Mozilla/5.0"`,
			"properties.email": `"0f6c8b2e1a0d9c7b5a3f1e0d2c4b6a8f0e1d3c5b7a9f1e3d5c7b9a1f3e5d7c9b1"`, "properties.order_value": "149.0"}})
}

func BenchmarkDecision(b *testing.B) {
	benchCodec(b, Decisions, Decision{DecisionID: "7f5e2c8b11016623", EventID: "0b6f8a2e-5d1c", UserKey: "u-4242", Destination: "meta",
		EventName: "purchase", EventTimeMs: 1795000000000, DecidedMs: 1795000000200, Outcome: "forwarded", Reason: "consented",
		Purpose: "marketing", Jurisdiction: "EU", FieldsSent: []string{"context.page_url", "properties.email"},
		FieldsStripped: []string{"context.ip", "properties.phone"}, PolicyVersion: "2026-11-01"})
}

func BenchmarkDelivery(b *testing.B) {
	benchCodec(b, Deliveries, Delivery{EventID: "0b6f8a2e-5d1c", Destination: "meta", Attempt: 1, Status: "delivered",
		HTTPStatus: 200, LatencyMs: 42, AtMs: 1795000000300})
}
