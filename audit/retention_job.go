package audit

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// runRetention applies the retention limits at start and then every Retention.Interval until
// ctx ends. Every writer of a group runs it; the runs are idempotent (a run with nothing to do
// costs a few counts), so no coordination is needed. A failed run is logged and tried again at
// the next interval.
func (w *Writer) runRetention(ctx context.Context) {
	r := w.retention
	if r.Interval <= 0 || (r.AnonymizeAfter <= 0 && r.DropAfter <= 0) {
		return
	}
	repeat(ctx, 0, r.Interval, func(start time.Time) {
		res, err := w.db.ApplyRetention(ctx, start, max(r.AnonymizeAfter, 0), r.DropAfter)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			w.log.Warn("retention run failed; trying again at the next interval", zap.Error(err), zap.Duration("interval", r.Interval))
		case res.Anonymized > 0 || len(res.Dropped) > 0 || len(res.TTL) > 0:
			w.log.Info("retention applied", zap.Uint64("anonymized_decisions", res.Anonymized),
				zap.Strings("dropped_partitions", res.Dropped), zap.Strings("ttl_changed", res.TTL),
				zap.Duration("took", time.Since(start)))
		}
	})
}

// repeat runs job first after start and then every interval until ctx ends (the writer's
// scheduled jobs: retention, the counts per day); job gets the time its run began.
func repeat(ctx context.Context, first, interval time.Duration, job func(start time.Time)) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(first):
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		job(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
