package sdk

import (
	"time"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Optional adapter capabilities. The runner checks for them with a type assertion, so an adapter
// that needs none implements only Adapter.

// Keyed is implemented by adapters whose requests may only carry events that share a key: a GA4
// Measurement Protocol request describes one client (one client_id), so a batch of events from
// several users has to become several requests. SplitBatch applies it.
type Keyed interface {
	// BatchKey returns the key events must share to travel in one request.
	BatchKey(ev *schemas.FilteredEvent) string
}

// Timeouter is implemented by adapters that know their vendor's recommended request timeout
// (Meta asks for ~1.5 s, webhook receivers customarily get 15–30 s). RequestTimeout reads it.
type Timeouter interface {
	Timeout() time.Duration
}

// RequestTimeout returns the adapter's own timeout when it has one, else def.
func RequestTimeout(a Adapter, def time.Duration) time.Duration {
	if t, ok := a.(Timeouter); ok && t.Timeout() > 0 {
		return t.Timeout()
	}
	return def
}

// SplitBatch cuts events into request-sized batches: grouped by BatchKey when the adapter is
// Keyed (keeping each key's events in their original order, keys in order of first appearance),
// then cut to at most MaxBatch events. The result never aliases a batch into another's
// capacity, so a caller may append to one without touching the next.
func SplitBatch(a Adapter, events []*schemas.FilteredEvent) [][]*schemas.FilteredEvent {
	groups := [][]*schemas.FilteredEvent{events}
	if k, ok := a.(Keyed); ok {
		groups = groups[:0]
		index := map[string]int{}
		for _, ev := range events {
			key := k.BatchKey(ev)
			i, seen := index[key]
			if !seen {
				i = len(groups)
				index[key] = i
				groups = append(groups, nil)
			}
			groups[i] = append(groups[i], ev)
		}
	}
	size := max(a.MaxBatch(), 1)
	var out [][]*schemas.FilteredEvent
	for _, g := range groups {
		for len(g) > 0 {
			n := min(size, len(g))
			out = append(out, g[:n:n])
			g = g[n:]
		}
	}
	return out
}
