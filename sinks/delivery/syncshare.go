package delivery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// sharedSync lets concurrent requests share one catch-up (of the consent state or the delivery
// ledger) instead of each listing the topic's end offsets: a caller that finds a catch-up in
// flight that started less than reuse ago waits for it, which is the rule Sync itself applies to
// a finished one ("a Sync that started less than reuse ago counts"). Without it every lane of a
// poll starts its own round trip to the broker at the same moment.
type sharedSync struct {
	mu       sync.Mutex
	inflight *syncCall
	waiting  atomic.Int32 // callers waiting for another's catch-up (read by the test)
}

type syncCall struct {
	started time.Time
	done    chan struct{}
	err     error
}

// do runs sync, or waits for the one in flight if it started less than reuse ago.
func (s *sharedSync) do(ctx context.Context, reuse time.Duration, now time.Time, sync func() error) error {
	s.mu.Lock()
	if c := s.inflight; c != nil && now.Sub(c.started) < reuse {
		s.mu.Unlock()
		s.waiting.Add(1)
		defer s.waiting.Add(-1)
		select {
		case <-c.done:
			if c.err != nil && ctx.Err() == nil {
				return sync() // its caller's ctx ended, not ours: catch up ourselves
			}
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &syncCall{started: now, done: make(chan struct{})}
	s.inflight = c
	s.mu.Unlock()
	c.err = sync()
	close(c.done)
	s.mu.Lock()
	if s.inflight == c {
		s.inflight = nil
	}
	s.mu.Unlock()
	return c.err
}
