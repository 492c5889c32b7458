package kafka

import (
	"context"
	"sync"
	"time"
)

// OwnWrites are the offsets of records a follower's owner wrote to the followed topic itself and
// has applied already (a sink's delivery journal: its outcomes are in the ledger store before
// they are produced). SyncOthers does not wait for the follower to read them back, only for the
// records of other writers: with one sink process writing nearly every record, a catch-up
// otherwise waited for its own latest round, and the follower had to fetch each round as it
// landed (a fetch per round costs the broker more than the round's produce). Offsets are added
// in increasing order per partition (one writer goroutine); adjacent ones merge, and what the
// follower has read is dropped.
type OwnWrites struct {
	mu     sync.Mutex
	ranges map[int32][]offsetRange // per partition, sorted, disjoint
	// added is closed by each Add (a wait makes it anew): a catch-up that listed the end offsets
	// while the owner's latest write was acknowledged but not yet noted waits for the note, not
	// for a fetch.
	added chan struct{}
}

// offsetRange is the offsets from lo up to, not including, hi.
type offsetRange struct{ lo, hi int64 }

// Add notes that the record at offset of partition p is the owner's own.
func (o *OwnWrites) Add(p int32, offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ranges == nil {
		o.ranges = map[int32][]offsetRange{}
	}
	if o.added != nil {
		close(o.added)
		o.added = nil
	}
	rs := o.ranges[p]
	if n := len(rs); n > 0 && rs[n-1].hi == offset {
		rs[n-1].hi++
		return
	}
	o.ranges[p] = append(rs, offsetRange{offset, offset + 1})
}

// next returns a channel closed by the next Add (nil o: one never closed).
func (o *OwnWrites) next() <-chan struct{} {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.added == nil {
		o.added = make(chan struct{})
	}
	return o.added
}

// covers reports whether every offset from from up to end is the owner's own.
func (o *OwnWrites) covers(p int32, from, end int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	at := from
	for _, r := range o.ranges[p] {
		if r.hi <= at {
			continue
		}
		if r.lo > at {
			return false // an offset not known to be the owner's: another writer's, or one not noted yet
		}
		at = max(at, r.hi)
		if at >= end {
			return true
		}
	}
	return at >= end
}

// forget drops what lies below next: the follower has handed it over (so memory holds only the
// owner's records not read back yet).
func (o *OwnWrites) forget(p int32, next int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs := o.ranges[p]
	drop := 0
	for drop < len(rs) && rs[drop].hi <= next {
		drop++
	}
	if drop > 0 {
		o.ranges[p] = rs[drop:]
	}
}

// Own tells the follower which records its owner wrote itself (for SyncOthers); call it before
// Start.
func (f *Follower) Own(o *OwnWrites) { f.own = o }

// SyncOthers is Sync, except that it does not wait for the records of OwnWrites: it returns once
// every record another writer committed before the call has been handed over. A catch-up of its
// own kind that started less than reuse ago counts.
func (f *Follower) SyncOthers(ctx context.Context, reuse time.Duration) error {
	return f.sync(ctx, reuse, &f.syncedOthers, true)
}
