package delivery

import (
	"context"
	"slices"
	"sync"
	"time"
)

// flight is a set of events on their way to the vendor (one poll's worth): its lanes are sent
// concurrently, each as soon as a request slot is free and the lanes of the flight before it
// that hold one of its users are done. So the next poll's events start while this poll's last
// lanes finish — a poll no longer waits for its longest lane with most request slots idle — and
// still no event overtakes an earlier one of its user.
type flight struct {
	c    *cycle        // every event's outcome, complete once done is closed
	done chan struct{} // closed when every event has its outcome
	// laneDone maps each user key of the flight to a channel closed when the lane holding that
	// user's events is done: the next flight's lanes with that user wait for it.
	laneDone map[string]chan struct{}
}

// wait returns the flight's outcomes once every event has one.
func (f *flight) wait() *cycle {
	<-f.done
	return f.c
}

// launch starts delivering items (see deliver) and returns at once. source is the consumer that
// read them (sourceMain, …: their journal lines say so). after is the flight started
// before this one that may still be going (nil if none): a lane waits for after's lanes of its
// users before it takes one of slots (delivery.concurrency of them, shared by the consumer's
// flights, so the consumer never has more requests in flight than that) and sends.
func (r *Runner) launch(ctx context.Context, source string, items []*item, waitBreaker bool, after *flight, slots chan struct{}) *flight {
	f := &flight{c: newCycle(source), done: make(chan struct{})}
	ready := r.screen(f.c, items)
	lanes := splitLanes(ready, r.adapter.MaxBatch(), r.concurrency)
	f.laneDone = make(map[string]chan struct{}, min(len(ready), 4*len(lanes)))
	results := make([]*cycle, len(lanes))
	// One grace context for the flight's requests: making one per request cost more than the
	// request's own context work (every one registered with the runner's context).
	reqCtx, endGrace := graceContext(ctx, shutdownGrace)
	var wg sync.WaitGroup
	for i, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		laneDone := make(chan struct{})
		var deps []chan struct{}
		for _, it := range lane {
			if _, seen := f.laneDone[it.ev.UserKey]; seen {
				continue
			}
			f.laneDone[it.ev.UserKey] = laneDone
			if after == nil {
				continue
			}
			if d, ok := after.laneDone[it.ev.UserKey]; ok && !slices.Contains(deps, d) {
				deps = append(deps, d)
			}
		}
		wg.Go(func() {
			defer close(laneDone)
			for _, d := range deps {
				<-d
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			lc := newCycle(source)
			lc.reqCtx = reqCtx
			lc.outcomes = make([]outcome, 0, len(lane))
			r.sendLane(ctx, lc, lane, waitBreaker)
			results[i] = lc
		})
	}
	go func() {
		wg.Wait()
		endGrace()
		f.c.outcomes = slices.Grow(f.c.outcomes, len(ready))
		for _, lc := range results {
			if lc == nil {
				continue
			}
			for _, o := range lc.outcomes {
				f.c.add(o)
			}
		}
		r.observe(f.c)
		close(f.done)
	}()
	return f
}

// screen settles the events that must never be sent (older than the retry horizon, or refused
// by the adapter's Validate) and returns the others.
func (r *Runner) screen(c *cycle, items []*item) []*item {
	ready := make([]*item, 0, len(items))
	for _, it := range items {
		if r.now().Sub(time.UnixMilli(it.ev.DecidedMs)) > r.horizon {
			// The consent view no longer covers withdrawals that old: never send it.
			it.lastError = "horizon_exceeded"
			r.deadLetter(c, it, it.attempts, 0, 0)
			continue
		}
		if err := r.adapter.Validate(it.ev, r.now()); err != nil {
			it.lastError = "invalid: " + err.Error()
			r.deadLetter(c, it, it.attempts, 0, 0)
			continue
		}
		ready = append(ready, it)
	}
	return ready
}
