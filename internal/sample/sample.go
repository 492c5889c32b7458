// Package sample generates realistic tracking traffic with every consent combination, for the
// demo, the end-to-end tests and the benchmarks. Output is deterministic for a seed.
package sample

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Event is one event in the ingest API's JSON form (docs/api.md).
type Event struct {
	EventID      string          `json:"event_id"`
	Event        string          `json:"event"`
	Timestamp    string          `json:"timestamp,omitempty"`
	UserID       string          `json:"user_id,omitempty"`
	AnonymousID  string          `json:"anonymous_id,omitempty"`
	Consent      map[string]bool `json:"consent,omitempty"`
	Jurisdiction string          `json:"jurisdiction,omitempty"`
	Context      map[string]any  `json:"context,omitempty"`
	Properties   map[string]any  `json:"properties,omitempty"`

	// GPC is sent as the request header Sec-GPC: 1, not in the body.
	GPC bool `json:"-"`
}

var (
	jurisdictions = []string{"EU", "US-CA", ""} // "" = none given: the policy's default
	// consents are every combination of the three purposes, plus "no choice made".
	consents = func() []map[string]bool {
		out := []map[string]bool{nil}
		for i := 0; i < 8; i++ {
			out = append(out, map[string]bool{"necessary": i&1 != 0, "analytics": i&2 != 0, "marketing": i&4 != 0})
		}
		return out
	}()
	pages = []string{"https://shop.example/", "https://shop.example/checkout", "https://shop.example/pharmacy/vitamins", "https://shop.example/product/42"}
	names = []string{"page_view", "add_to_cart", "purchase"}
)

// Events returns n events over users distinct users covering every combination of jurisdiction,
// consent and GPC, some on sensitive (health) pages. Event i belongs to user i % users.
func Events(seed uint64, n, users int, at time.Time) []Event {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]Event, n)
	for i := range out {
		u := i % users
		e := Event{
			EventID:      fmt.Sprintf("ev-%d-%06d", seed, i),
			Event:        names[r.IntN(len(names))],
			Timestamp:    at.Add(time.Duration(i) * time.Millisecond).UTC().Format(time.RFC3339Nano),
			Consent:      consents[(i/3)%len(consents)],
			Jurisdiction: jurisdictions[i%len(jurisdictions)],
			GPC:          (i/(3*len(consents)))%2 == 1,
			Context: map[string]any{
				"page_url":   pages[r.IntN(len(pages))],
				"user_agent": "Mozilla/5.0 (X11; Linux x86_64) tollgate-sample",
				"ip":         fmt.Sprintf("203.0.113.%d", u%250+1),
			},
			Properties: map[string]any{
				"order_value": float64(r.IntN(50000)) / 100,
				"currency":    "EUR",
				"email":       fmt.Sprintf("  User.%d@Example.com ", u),
				"phone":       fmt.Sprintf("+1 (650) 555-%04d", u%10000),
				"fbclid":      fmt.Sprintf("IwAR%dXyZ", u),
				"session_id":  fmt.Sprintf("s-%d", u),
			},
		}
		if u%2 == 0 {
			e.UserID = fmt.Sprintf("u-%d-%d", seed, u)
		} else {
			e.AnonymousID = fmt.Sprintf("a-%d-%d", seed, u)
		}
		if i%17 == 0 {
			e.Properties["error"] = "checkout_timeout"
		}
		out[i] = e
	}
	return out
}

// UserKey is the key tollgate files the event's user under.
func (e *Event) UserKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}
