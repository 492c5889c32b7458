package repair

import (
	"context"
	"hash/maphash"
	"math"
	"sync"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
)

// candidates are a run's events to repair: per destination, event id → live decision time (ms),
// or taken once the walk has handed the event on. Event ids are kept as 128-bit hashes: a map
// without pointers, which the garbage collector does not scan (millions of string keys, marked at
// every collection of a repair that runs for hours beside live traffic). The walk takes them;
// each destination's private ledger asks, from its follower, which events are candidates (was).
type candidates struct {
	mu     sync.RWMutex
	byDest map[string]map[eventKey]int64
	total  int
	left   int // not yet met on the raw topic
}

// taken marks a candidate the walk has handed on: still a candidate for the ledger (was), no
// longer for the walk.
const taken = math.MinInt64

// eventKey is an event id's 128-bit hash (two maphash seeds): a collision among a few million ids
// has a chance of about 10^-26, and the process's random seeds make it no input's to choose.
type eventKey [2]uint64

var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func keyOf(eventID string) eventKey {
	return eventKey{maphash.String(keySeeds[0], eventID), maphash.String(keySeeds[1], eventID)}
}

// loadCandidates reads the run's candidates. One that live traffic blocked because its user had
// withdrawn the purpose or been erased (the lookahead saw a refusal queued after the event, which
// the replay, judging each event by the log up to it, did not) is counted withdrawn or erased at
// once: no policy fix lifts a person's own refusal.
func loadCandidates(ctx context.Context, db *audit.DB, opt Options, counts *Counts) (*candidates, error) {
	c := &candidates{byDest: map[string]map[eventKey]int64{}}
	err := db.RepairCandidates(ctx, opt.RunID, opt.Destination, func(rc audit.RepairCandidate) error {
		switch rc.LiveReason {
		case delivery.BlockedWithdrawn:
			counts.Withdrawn++
			counts.Candidates++
			return nil
		case delivery.BlockedErased:
			counts.Erased++
			counts.Candidates++
			return nil
		}
		m := c.byDest[rc.Destination]
		if m == nil {
			m = map[eventKey]int64{}
			c.byDest[rc.Destination] = m
		}
		k := keyOf(rc.EventID)
		if _, dup := m[k]; !dup {
			m[k] = rc.LiveDecided.UnixMilli()
			c.total++
		}
		return nil
	})
	c.left = c.total
	return c, err
}

// take marks an event taken and returns its live decision time for dest, if it is a candidate
// not taken yet.
func (c *candidates) take(dest, eventID string) (int64, bool) {
	k := keyOf(eventID)
	c.mu.Lock()
	defer c.mu.Unlock()
	ms, ok := c.byDest[dest][k]
	if !ok || ms == taken {
		return 0, false
	}
	c.byDest[dest][k] = taken
	c.left--
	return ms, true
}

// wants reports whether an event is a candidate not taken yet, for any destination.
func (c *candidates) wants(eventID string) bool {
	k := keyOf(eventID)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, m := range c.byDest {
		if ms, ok := m[k]; ok && ms != taken {
			return true
		}
	}
	return false
}

// was reports whether an event is, or was, a candidate for dest.
func (c *candidates) was(dest, eventID string) bool {
	k := keyOf(eventID)
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.byDest[dest][k]
	return ok
}
