package delivery

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// outcome is what became of one event in one delivery pass. This file runs the pass (lanes,
// batches, screening, breaker, the request) and gives the outcome of each event not sent
// (blocked by the re-check, already delivered, deferred); judge.go decides what the vendor's
// answer means for each event sent; records.go turns outcomes into the records to store (audit
// rows, retry and dead-letter records). What an answer means and how it is written down are
// each read in one place.
type outcome struct {
	it        *item
	status    string // StatusDelivered, StatusRetrying, StatusDeadLettered, StatusBlocked or statusDeferred
	attempt   int    // the attempt this outcome records (it.attempts for events not sent)
	http      int    // the vendor's HTTP status; 0 when there was no answer
	reason    string // the error or blocking reason; empty on success
	latency   time.Duration
	notBefore time.Time // retrying and deferred: when the event is due again
	failed    string    // a sent attempt that failed: "retry" or "permanent" (the verdict's class)
	// journaled: the attempt's row is its request's journal outcome, not an audit record.
	journaled bool
	// again and parked, for StatusInDoubt: the event is sent again (a retry record, due at
	// notBefore), or dead-lettered, its attempts spent; neither: never sent again (on_doubt skip).
	again, parked bool
}

// Outcomes of events not sent, with no audit row: nothing was sent.
const (
	// statusDeferred: moved on unsent, without counting an attempt (breaker open, shutdown).
	statusDeferred = "deferred"
	// statusAlreadyDelivered: the delivery ledger says the vendor has it already.
	statusAlreadyDelivered = "already_delivered"
)

// cycle is the result of delivering one set of events. Every event handed to deliver ends in
// exactly one outcome.
type cycle struct {
	outcomes []outcome
	counts   map[string]int // by status
	// reqCtx, when set, is what the cycle's requests are made under: its ctx's end delayed by
	// shutdownGrace (graceContext), made once for a flight rather than once per request.
	reqCtx context.Context
	// source is the consumer whose events these are (sourceMain, …), for the journal.
	source string
}

func newCycle(source string) *cycle { return &cycle{counts: make(map[string]int, 5), source: source} }

func (c *cycle) add(o outcome) {
	c.outcomes = append(c.outcomes, o)
	c.counts[o.status]++
}

// later returns the events to try again (retrying or deferred) and when the last of them is due.
func (c *cycle) later() (items []*item, due time.Time) {
	for _, o := range c.outcomes {
		if o.status == StatusRetrying || o.status == statusDeferred || o.again {
			items = append(items, o.it)
			if o.notBefore.After(due) {
				due = o.notBefore
			}
		}
	}
	return items, due
}

// deliver sends items to the vendor and returns once every one has an outcome: screened
// (horizon, Validate; then the consent re-check right before each request), dealt into lanes by
// user key (splitLanes) that are sent concurrently (launch), each lane split into request-sized
// batches sent in order, each admitted by the circuit breaker and the rate limiter. waitBreaker
// makes an open breaker wait instead of deferring. Once ctx ends, unsent events are deferred
// (due at once), so the caller can still hand them over durably and commit.
func (r *Runner) deliver(ctx context.Context, source string, items []*item, waitBreaker bool) *cycle {
	return r.launch(ctx, source, items, waitBreaker, nil, r.retrySlots).wait()
}

// sendLane sends one lane's events in request-sized batches, one request after the other.
func (r *Runner) sendLane(ctx context.Context, c *cycle, lane []*item, waitBreaker bool) {
	for _, b := range splitItems(r.adapter, lane) {
		r.sendBatch(ctx, c, b, waitBreaker)
	}
}

// splitLanes deals items into lanes by user key, keeping their order within a lane, so the
// events of one user stay in one lane in topic order. There are as many lanes as full requests
// (a lane holds about a request's worth), up to concurrency·lanesPerWorker: more lanes than
// request slots let a worker that finishes early take the next one, so a lane with a busy user
// holds the others up less. Each user gets a lane of their own while there are lanes left; later
// users share one by a hash of their key. (Hashing every user into a fixed number of lanes put
// two or three users in many lanes while others stayed empty, and a poll waits for its longest
// lane.) With concurrency 1 there is one lane: the old order.
func splitLanes(items []*item, maxBatch, concurrency int) [][]*item {
	n := min((len(items)+maxBatch-1)/max(maxBatch, 1), concurrency*lanesPerWorker)
	if concurrency <= 1 || n <= 1 {
		return [][]*item{items}
	}
	lanes := make([][]*item, 0, n)
	laneOf := make(map[string]int, n)
	for _, it := range items {
		i, ok := laneOf[it.ev.UserKey]
		if !ok {
			if len(lanes) < n {
				i = len(lanes)
				lanes = append(lanes, nil)
			} else {
				i = int(keyHash(it.ev.UserKey) % uint32(n))
			}
			laneOf[it.ev.UserKey] = i
		}
		lanes[i] = append(lanes[i], it)
	}
	return lanes
}

// lanesPerWorker: lanes per request slot when events are plentiful.
const lanesPerWorker = 4

// keyHash is FNV-1a of a user key: stable, allocation-free, and spread well enough for lanes.
func keyHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// splitItems cuts items into request-sized batches (sdk.SplitBatch), keeping their history.
func splitItems(a sdk.Adapter, items []*item) [][]*item {
	byEvent := make(map[*schemas.FilteredEvent]*item, len(items))
	for _, it := range items {
		byEvent[it.ev] = it
	}
	var out [][]*item
	for _, b := range sdk.SplitBatch(a, events(items)) {
		bi := make([]*item, len(b))
		for i, ev := range b {
			bi[i] = byEvent[ev]
		}
		out = append(out, bi)
	}
	return out
}

func events(items []*item) []*schemas.FilteredEvent {
	evs := make([]*schemas.FilteredEvent, len(items))
	for i, it := range items {
		evs[i] = it.ev
	}
	return evs
}

// sendBatch makes one attempt for a batch (splitting it further when the vendor asks): the
// send-time checks, the breaker and the rate limit, the journal's intent, the request, and what
// came of it.
func (r *Runner) sendBatch(ctx context.Context, c *cycle, batch []*item, waitBreaker bool) {
	if ctx.Err() != nil {
		r.deferAll(c, batch, r.now())
		return
	}
	batch = r.recheck(ctx, c, batch)
	batch, claimed := r.skipDelivered(ctx, c, batch)
	defer r.inflight.release(claimed)
	if len(batch) == 0 {
		return
	}
	if ctx.Err() != nil {
		r.deferAll(c, batch, r.now())
		return
	}
	done, until, err := r.breaker.admit(ctx, waitBreaker)
	if err != nil {
		r.deferAll(c, batch, until)
		return
	}
	if err := r.limiter.Wait(ctx); err != nil {
		done(errExcluded)
		r.deferAll(c, batch, r.now())
		return
	}
	reqCtx := c.reqCtx
	if reqCtx == nil {
		var cancel context.CancelFunc
		reqCtx, cancel = graceContext(ctx, shutdownGrace)
		defer cancel()
	}
	req := newRequest(c.source, batch)
	if err := r.journal.intend(reqCtx, req, r.now()); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("delivery journal: intent not stored; the batch waits", zap.Error(err))
		}
		r.journal.unsent(req, r.now())
		done(errExcluded)
		r.deferAll(c, batch, r.now())
		return
	}
	var wrote atomic.Bool // the request went out whole: without an answer, it is in doubt
	traced := httptrace.WithClientTrace(reqCtx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}})
	start := r.now()
	v, err := sdk.Send(traced, r.http, r.adapter, events(batch))
	if err != nil {
		r.log.Warn("cannot build request", zap.Error(err))
	}
	latency := r.now().Sub(start)
	doubt := inDoubt(v, wrote.Load())
	if v.Class == sdk.Retry && ctx.Err() != nil && reqCtx.Err() != nil && !doubt {
		// Cut short by shutdown before it went out: not the vendor's fault, and not an attempt.
		done(errExcluded)
		r.journal.unsent(req, r.now())
		r.deferAll(c, batch, r.now())
		return
	}
	done(breakerResult(v))
	requestSeconds.WithLabelValues(r.dest.Name, v.Class.String()).Observe(latency.Seconds())
	r.apply(ctx, c, batch, req, v, doubt, latency, waitBreaker)
}

// recheck applies the send-time consent re-check to a batch about to go.
func (r *Runner) recheck(ctx context.Context, c *cycle, batch []*item) []*item {
	if err := r.consent.Sync(ctx, consentSyncReuse); err != nil {
		return batch // ctx ended: the caller defers the batch unsent
	}
	kept := batch[:0:0]
	for _, it := range batch {
		if why := r.consent.Check(it.ev, r.dest.Purpose); why != "" {
			c.add(outcome{it: it, status: StatusBlocked, attempt: it.attempts, reason: why})
			continue
		}
		kept = append(kept, it)
	}
	return kept
}

// skipDelivered drops the events the destination's vendor already accepted (the delivery
// ledger): they were sent by an earlier attempt whose offsets never got committed, or by another
// process. A second copy of an event within the batch goes too: the first one carries it. No
// request is made for them, so they get no deliveries row: the request that delivers the event
// has (or had) its own. The others are claimed (inflight; claimed lists the claims made here, to
// release once the batch is done): an event another flight of this runner is sending right now
// is deferred, and comes round again once that flight's outcome is in the ledger.
func (r *Runner) skipDelivered(ctx context.Context, c *cycle, batch []*item) (kept, claimed []*item) {
	if len(batch) == 0 || r.journal.store.syncOthers(ctx, consentSyncReuse) != nil {
		return batch, nil // ctx ended: the caller defers the batch unsent
	}
	kept = batch[:0:0]
	inBatch := make(map[string]bool, len(batch))
	for _, it := range batch {
		if inBatch[it.ev.EventID] || r.journal.store.delivered(it.ev) {
			c.add(outcome{it: it, status: statusAlreadyDelivered, attempt: it.attempts})
			continue
		}
		if !it.claimed { // a half of a split batch holds its parent's claim
			if !r.inflight.claim(it.ev.EventID) {
				c.add(outcome{it: it, status: statusDeferred, attempt: it.attempts, notBefore: r.now().Add(inflightWait)})
				continue
			}
			it.claimed = true
			claimed = append(claimed, it)
		}
		inBatch[it.ev.EventID] = true
		kept = append(kept, it)
	}
	return kept, claimed
}

// inflightWait is how long an event another flight is sending waits before it comes round again.
const inflightWait = time.Second

// apply records the vendor's verdict on one attempt of a batch: each event's outcome as judge
// decides it (in_doubt when the request's outcome is unknown), in the journal and in the cycle,
// then what the verdict asks to send again (each half of a batch to split, or the rest of a
// request refused only because of some of its events).
func (r *Runner) apply(ctx context.Context, c *cycle, batch []*item, req *request, v sdk.Verdict, doubt bool, latency time.Duration, waitBreaker bool) {
	if v.Class == sdk.Permanent && v.Split && len(v.Failed) == 0 && len(batch) > 1 {
		r.journal.unsent(req, r.now()) // the halves are requests of their own, with their rows
		h := len(batch) / 2
		r.sendBatch(ctx, c, batch[:h:h], waitBreaker)
		r.sendBatch(ctx, c, batch[h:], waitBreaker)
		return
	}
	outs, rest := judge(batch, v, latency, r.now(), r.cfg.Delivery.MaxAttempts, r.backoff)
	resend := r.dest.ResendInDoubt()
	if doubt {
		doubtful(outs, resend)
	}
	r.journal.outcome(req, outs, v.Status, latency, resend, r.now())
	for _, o := range outs {
		o.journaled = true
		r.settle(c, o)
	}
	if len(rest) > 0 { // strictly smaller than batch: Failed was not empty
		r.sendBatch(ctx, c, rest, waitBreaker)
	}
}

// settle takes the outcome of a sent attempt (the ledger has its delivered events already): it
// counts a failure, carries the event's history forward (a retry or dead-letter record, and the
// next round of a replay, read it) and adds it.
func (r *Runner) settle(c *cycle, o outcome) {
	if o.failed != "" {
		failedEvents.WithLabelValues(r.dest.Name, o.failed).Inc()
		metrics.Errors.WithLabelValues(metrics.StageSink, "vendor_"+o.failed).Inc()
		if o.it.firstFailure.IsZero() {
			o.it.firstFailure = r.now()
		}
		o.it.lastError = o.reason
		o.it.attempts = o.attempt
	}
	c.add(o)
}

// deadLetter records an event's last attempt (or, with attempt == it.attempts, its refusal
// unsent) and parks it on the dead-letter topic.
func (r *Runner) deadLetter(c *cycle, it *item, attempt, httpStatus int, latency time.Duration) {
	it.attempts = attempt
	c.add(outcome{it: it, status: StatusDeadLettered, attempt: attempt, http: httpStatus, reason: it.lastError, latency: latency})
}

// deferAll moves unsent events to later without counting an attempt (breaker open, shutdown).
func (r *Runner) deferAll(c *cycle, batch []*item, notBefore time.Time) {
	for _, it := range batch {
		c.add(outcome{it: it, status: statusDeferred, attempt: it.attempts, notBefore: notBefore})
	}
}

// backoff is the wait before the next attempt: exponential with full jitter (backoff.Policy.Full:
// uniform between 0 and InitialBackoff × 2^(attempt-1), capped by MaxBackoff), and never shorter
// than the vendor's Retry-After: a vendor that says when to come back is obeyed, up to
// sdk.MaxRetryAfter (the retry consumer waits without holding anything, so a long wait costs
// nothing but time; an event whose wait outlives delivery.retry_horizon is dead-lettered then).
func (r *Runner) backoff(attempt int, retryAfter time.Duration) time.Duration {
	p := backoff.Policy{Initial: r.cfg.Delivery.InitialBackoff, Max: r.cfg.Delivery.MaxBackoff}
	return max(p.Full(attempt), min(retryAfter, sdk.MaxRetryAfter))
}

// graceContext is ctx, except that its end is delayed by grace: a request in flight at shutdown
// gets a chance to finish, so its outcome is recorded instead of being sent again after restart.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(g, func() { t.Stop() })
	})
	return g, func() { stop(); cancel() }
}
