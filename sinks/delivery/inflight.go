package delivery

import "sync"

// inflight is the set of events a runner is sending right now, shared by its main, retry and
// replay flights. An event can be on two of its topics at once — a sink killed between storing
// a failed event's retry record and committing the main topic's offset finds it on both — and
// the ledger knows an event only once its request's outcome is in: without the set, both
// copies could pass skipDelivered before either request answered.
type inflight struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// claim marks the event as being sent; false if another flight is sending it.
func (s *inflight) claim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]struct{}{}
	}
	if _, busy := s.ids[id]; busy {
		return false
	}
	s.ids[id] = struct{}{}
	return true
}

// release ends the claims of items (those that hold one).
func (s *inflight) release(items []*item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if it.claimed {
			delete(s.ids, it.ev.EventID)
			it.claimed = false
		}
	}
}
