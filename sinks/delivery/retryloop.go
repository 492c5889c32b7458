package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// runRetries consumes the destination's retry topic. A partition whose next record is not due
// yet is rewound to that record and paused until it is due, so no record is held while waiting
// (a rebalance never waits for a backoff) and the other partitions keep going. Records of one
// partition are sent in order; their due times are near-monotonic (each is "now + backoff",
// backoff capped by delivery.max_backoff), so a later record waits at most that cap behind an
// earlier one.
func (r *Runner) runRetries(ctx context.Context) error {
	topic := r.cfg.Topic(config.RetryTopic(r.dest.Name))
	cl, closeClient, _, err := r.groupConsumer(r.cfg.SinkRetryGroup(r.dest.Name), topic, sourceRetry)
	if err != nil {
		return err
	}
	defer closeClient()
	paused := map[int32]time.Time{}
	for {
		wake := r.resumeDue(cl, topic, paused)
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if !wake.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, wake)
		}
		fetches := cl.PollRecords(pollCtx, r.pollSize())
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		r.logFetchErrors(fetches)
		due := r.takeDue(cl, topic, fetches.Records(), paused)
		if len(due) > 0 {
			if err := r.handle(ctx, cl, due, true); err != nil {
				return err
			}
		}
		cl.AllowRebalance()
	}
}

// takeDue returns, per partition, the records due now up to the first that is not; that
// partition is rewound to it and paused until it is due.
func (r *Runner) takeDue(cl *kgo.Client, topic string, recs []*kgo.Record, paused map[int32]time.Time) []*kgo.Record {
	now := r.now()
	var due []*kgo.Record
	stopped := map[int32]bool{}
	for _, rec := range recs {
		if stopped[rec.Partition] {
			continue
		}
		if nb := NotBefore(rec); nb.After(now) {
			stopped[rec.Partition] = true
			paused[rec.Partition] = nb
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {rec.Partition: {Epoch: rec.LeaderEpoch, Offset: rec.Offset}}})
			cl.PauseFetchPartitions(map[string][]int32{topic: {rec.Partition}})
			continue
		}
		due = append(due, rec)
	}
	return due
}

// resumeDue resumes the paused partitions whose time has come and returns the earliest time
// another one will (zero if none is paused).
func (r *Runner) resumeDue(cl *kgo.Client, topic string, paused map[int32]time.Time) time.Time {
	now := r.now()
	var wake time.Time
	var resume []int32
	for p, at := range paused {
		if !at.After(now) {
			resume = append(resume, p)
			delete(paused, p)
		} else if wake.IsZero() || at.Before(wake) {
			wake = at
		}
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(map[string][]int32{topic: resume})
	}
	return wake
}

func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
