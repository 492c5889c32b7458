package sdk

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/schemas"
)

// FieldString returns a field of a filtered event as a string. Fields hold JSON text: a JSON
// string is decoded, any other scalar is returned as its text (a number keeps its exact digits).
// ok is false when the field is absent, null, an empty string, an object or an array — none of
// which a vendor's string slot can take.
func FieldString(ev *schemas.FilteredEvent, path string) (string, bool) {
	raw, ok := ev.Fields[path]
	if !ok {
		return "", false
	}
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "null" || raw[0] == '{' || raw[0] == '[' {
		return "", false
	}
	if raw[0] != '"' {
		return raw, true
	}
	// Fast path: most strings (hashes, URLs, currency codes) have no escapes.
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && !strings.ContainsAny(raw[1:len(raw)-1], `\"`) {
		s := raw[1 : len(raw)-1]
		return s, s != ""
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", false
	}
	return s, s != ""
}

// FieldNumber returns a field holding a JSON number, or a string that parses as one ("149.00":
// SDKs often send prices as strings). Vendors want value fields as numbers.
func FieldNumber(ev *schemas.FilteredEvent, path string) (float64, bool) {
	s, ok := FieldString(ev, path)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// FieldJSON returns a field's JSON text for embedding in a request body as is. Text that is not
// valid JSON (a record written by a buggy producer) is sent as a JSON string instead, so one bad
// field cannot make a whole batch's body invalid.
func FieldJSON(ev *schemas.FilteredEvent, path string) (json.RawMessage, bool) {
	raw, ok := ev.Fields[path]
	if !ok {
		return nil, false
	}
	if json.Valid([]byte(raw)) {
		return json.RawMessage(raw), true
	}
	b, _ := json.Marshal(raw) // marshalling a string cannot fail
	return b, true
}

// IsHashed reports whether s is a SHA-256 digest as the consent processor writes it: 64
// lower-case hex characters.
func IsHashed(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// HashedField returns a field that must reach the vendor SHA-256 hashed. The processor hashes
// it (the adapters never hash again: a second hash matches nobody), and a value that is not a
// digest is never sent — it could be raw PII if a record skipped the processor's hashing.
func HashedField(ev *schemas.FilteredEvent, path string) (string, bool) {
	s, ok := FieldString(ev, path)
	if !ok || !IsHashed(s) {
		return "", false
	}
	return s, true
}

// EventTime returns the event's time.
func EventTime(ev *schemas.FilteredEvent) time.Time { return time.UnixMilli(ev.TimestampMs) }

// CheckAge returns an error when the event is older than max at now: vendors refuse such events
// (Meta: 7 days, GA4: 72 h), and Meta refuses the whole batch along with them.
func CheckAge(ev *schemas.FilteredEvent, now time.Time, max time.Duration, vendor string) error {
	if age := now.Sub(EventTime(ev)); age > max {
		return fmt.Errorf("event is %s old; %s accepts events at most %s old", age.Truncate(time.Second), vendor, max)
	}
	return nil
}

// Order is what an event says about an order, under the JSON names Meta's custom_data and
// TikTok's properties both use.
type Order struct {
	// Value is properties.order_value (FieldNumber).
	Value *float64 `json:"value,omitempty"`
	// Currency is properties.currency in upper case (ISO 4217, as vendors want it).
	Currency string `json:"currency,omitempty"`
	// OrderID is properties.order_id.
	OrderID string `json:"order_id,omitempty"`
}

// OrderOf returns the event's order fields, or nil when it has none (the vendor's object is
// then left out rather than sent empty).
func OrderOf(ev *schemas.FilteredEvent) *Order {
	var o Order
	if v, ok := FieldNumber(ev, "properties.order_value"); ok {
		o.Value = &v
	}
	if c, ok := FieldString(ev, "properties.currency"); ok {
		o.Currency = strings.ToUpper(c)
	}
	o.OrderID, _ = FieldString(ev, "properties.order_id")
	if o == (Order{}) {
		return nil
	}
	return &o
}
