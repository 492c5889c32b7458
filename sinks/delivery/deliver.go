package delivery

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// cycle is the result of delivering one set of events: the records to store (audit rows,
// dead-letter records) and the events to try again later. Every event handed to deliver ends in
// exactly one of: delivered, blocked, dead-lettered, or later (retry or deferred).
type cycle struct {
	out    []*kgo.Record
	later  []later
	counts map[string]int // by status, plus "deferred"
}

type later struct {
	it        *item
	notBefore time.Time
}

func newCycle() *cycle { return &cycle{counts: map[string]int{}} }

// Counts returns how many events ended in each status (delivered, blocked, dead_lettered,
// retrying) or were deferred unsent.
func (c *cycle) Counts() map[string]int { return c.counts }

// deliver sends items to the vendor: screened (consent re-check, horizon, Validate), split into
// request-sized batches, each admitted by the circuit breaker and the rate limiter. waitBreaker
// makes an open breaker wait instead of deferring. Once ctx ends, unsent events are deferred
// (due at once), so the caller can still hand them over durably and commit.
func (r *Runner) deliver(ctx context.Context, items []*item, waitBreaker bool) *cycle {
	c := newCycle()
	ready := make([]*item, 0, len(items))
	for _, it := range items {
		switch {
		case r.now().Sub(time.UnixMilli(it.ev.DecidedMs)) > r.horizon:
			// The consent view no longer covers withdrawals that old: never send it.
			it.lastError = "horizon_exceeded"
			r.deadLetter(c, it, it.attempts, 0, 0)
		default:
			if err := r.adapter.Validate(it.ev, r.now()); err != nil {
				it.lastError = "invalid: " + err.Error()
				r.deadLetter(c, it, it.attempts, 0, 0)
				continue
			}
			ready = append(ready, it)
		}
	}
	for _, b := range splitItems(r.adapter, ready) {
		r.sendBatch(ctx, c, b, waitBreaker)
	}
	return c
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

// sendBatch makes one attempt for a batch (splitting it further when the vendor asks).
func (r *Runner) sendBatch(ctx context.Context, c *cycle, batch []*item, waitBreaker bool) {
	if ctx.Err() != nil {
		r.deferAll(c, batch, r.now())
		return
	}
	batch = r.recheck(ctx, c, batch)
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
	reqCtx, cancel := graceContext(ctx, shutdownGrace)
	defer cancel()
	start := r.now()
	v, err := sdk.Send(reqCtx, r.http, r.adapter, events(batch))
	if err != nil {
		r.log.Warn("cannot build request", zap.Error(err))
	}
	latency := r.now().Sub(start)
	if v.Class == sdk.Retry && ctx.Err() != nil && reqCtx.Err() != nil {
		// Cut short by shutdown: not the vendor's fault, and not an attempt worth counting.
		done(errExcluded)
		r.deferAll(c, batch, r.now())
		return
	}
	done(outcome(v))
	requestSeconds.WithLabelValues(r.dest.Name, v.Class.String()).Observe(latency.Seconds())
	r.apply(ctx, c, batch, v, latency, waitBreaker)
}

// recheck applies the send-time consent re-check to a batch about to go.
func (r *Runner) recheck(ctx context.Context, c *cycle, batch []*item) []*item {
	if err := r.consent.Sync(ctx, r.admin, r.stateTopic, consentSyncReuse, r.log); err != nil {
		return batch // ctx ended: the caller defers the batch unsent
	}
	kept := batch[:0:0]
	for _, it := range batch {
		if why := r.consent.Check(it.ev, r.dest.Purpose); why != "" {
			c.out = append(c.out, r.auditRecord(it.ev, it.attempts, StatusBlocked, 0, why, 0))
			c.counts[StatusBlocked]++
			blockedEvents.WithLabelValues(r.dest.Name, why).Inc()
			continue
		}
		kept = append(kept, it)
	}
	return kept
}

// apply records the vendor's verdict on one attempt of a batch.
func (r *Runner) apply(ctx context.Context, c *cycle, batch []*item, v sdk.Verdict, latency time.Duration, waitBreaker bool) {
	if v.Class == sdk.Permanent && v.Split && len(v.Failed) == 0 && len(batch) > 1 {
		h := len(batch) / 2
		r.sendBatch(ctx, c, batch[:h:h], waitBreaker)
		r.sendBatch(ctx, c, batch[h:], waitBreaker)
		return
	}
	var rest []*item
	for i, it := range batch {
		class, reason := v.Class, v.Reason
		if why, bad := v.Failed[i]; bad {
			class, reason = sdk.Permanent, why
		} else if class == sdk.Retry && v.ResendRest && len(v.Failed) > 0 {
			rest = append(rest, it)
			continue
		}
		attempt := it.attempts + 1
		switch {
		case class == sdk.Delivered:
			c.out = append(c.out, r.auditRecord(it.ev, attempt, StatusDelivered, v.Status, "", latency))
			c.counts[StatusDelivered]++
			sentEvents.WithLabelValues(r.dest.Name).Inc()
			continue
		case class == sdk.Retry:
			failedEvents.WithLabelValues(r.dest.Name, "retry").Inc()
		default:
			failedEvents.WithLabelValues(r.dest.Name, "permanent").Inc()
		}
		if it.firstFailure.IsZero() {
			it.firstFailure = r.now()
		}
		it.lastError = reason
		limit := r.cfg.Delivery.MaxAttempts
		if it.limit > 0 {
			limit = it.limit
		}
		if class == sdk.Retry && attempt < limit {
			c.out = append(c.out, r.auditRecord(it.ev, attempt, StatusRetrying, v.Status, reason, latency))
			c.counts[StatusRetrying]++
			retriedEvents.WithLabelValues(r.dest.Name).Inc()
			it.attempts = attempt
			c.later = append(c.later, later{it, r.now().Add(r.backoff(attempt, v.RetryAfter))})
			continue
		}
		r.deadLetter(c, it, attempt, v.Status, latency)
	}
	if len(rest) > 0 { // strictly smaller than batch: Failed was not empty
		r.sendBatch(ctx, c, rest, waitBreaker)
	}
}

// deadLetter records an event's last attempt (or, with attempt == it.attempts, its refusal
// unsent) and parks it on the dead-letter topic.
func (r *Runner) deadLetter(c *cycle, it *item, attempt, httpStatus int, latency time.Duration) {
	it.attempts = attempt
	c.out = append(c.out, r.auditRecord(it.ev, attempt, StatusDeadLettered, httpStatus, it.lastError, latency),
		r.deadLetterRecord(it, httpStatus))
	c.counts[StatusDeadLettered]++
	deadLetteredEvents.WithLabelValues(r.dest.Name).Inc()
}

// deferAll moves unsent events to later without counting an attempt (breaker open, shutdown).
func (r *Runner) deferAll(c *cycle, batch []*item, notBefore time.Time) {
	for _, it := range batch {
		c.later = append(c.later, later{it, notBefore})
	}
	c.counts["deferred"] += len(batch)
	deferredEvents.WithLabelValues(r.dest.Name).Add(float64(len(batch)))
}

// backoff is exponential with full jitter (a uniform wait between 0 and InitialBackoff ×
// 2^(attempt-1), capped by MaxBackoff), and never shorter than the vendor's Retry-After: a
// vendor that says when to come back is obeyed, up to sdk.MaxRetryAfter (the retry consumer waits
// without holding anything, so a long wait costs nothing but time; an event whose wait outlives
// delivery.retry_horizon is dead-lettered then).
func Backoff(d config.Delivery, attempt int, retryAfter time.Duration) time.Duration {
	ceil := d.InitialBackoff << min(attempt-1, 20)
	if ceil > d.MaxBackoff || ceil <= 0 {
		ceil = d.MaxBackoff
	}
	return max(time.Duration(rand.Int64N(int64(ceil)+1)), min(retryAfter, sdk.MaxRetryAfter))
}

func (r *Runner) backoff(attempt int, retryAfter time.Duration) time.Duration {
	return Backoff(r.cfg.Delivery, attempt, retryAfter)
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

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
