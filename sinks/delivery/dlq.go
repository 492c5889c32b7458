package delivery

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// DeadLetter is one record of a destination's dead-letter topic.
type DeadLetter struct {
	Partition    int32
	Offset       int64
	EventID      string // "" when the record is not a readable event
	Attempts     int
	FirstFailure time.Time
	FailedAt     time.Time
	Error        string
	record       *kgo.Record
}

// ReadDeadLetters returns the destination's dead-letter records, oldest first per partition,
// from the offsets in starts (nil: from the start) to the end as of the call.
func ReadDeadLetters(ctx context.Context, r *Runner, starts map[int32]int64) ([]DeadLetter, map[int32]int64, error) {
	topic := r.cfg.Topic(config.DLQTopic(r.dest.Name))
	cl, err := kafka.NewClient(r.cfg, r.log)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	ends, err := kafka.EndOffsets(ctx, cl, topic)
	if err != nil {
		return nil, nil, err
	}
	var out []DeadLetter
	err = kafka.ReadRange(ctx, r.cfg, r.log, topic, starts, ends, func(rec *kgo.Record) {
		d := DeadLetter{Partition: rec.Partition, Offset: rec.Offset, Error: kafka.Header(rec, config.HeaderError),
			FirstFailure: ParseHeaderTime(kafka.Header(rec, config.HeaderFirstFailure)),
			FailedAt:     ParseHeaderTime(kafka.Header(rec, config.HeaderFailedAt)), record: rec}
		d.Attempts, _ = strconv.Atoi(kafka.Header(rec, config.HeaderAttempts))
		if d.FailedAt.IsZero() {
			d.FailedAt = rec.Timestamp
		}
		if ev, err := schemas.FilteredEvents.Decode(rec.Value); err == nil {
			d.EventID = ev.EventID
		}
		out = append(out, d)
	})
	return out, ends, err
}

// ReplayProgress is reported after each round of a replay.
type ReplayProgress struct {
	Total   int            // dead-lettered events selected
	Skipped int            // undecodable records (never sendable)
	Counts  map[string]int // final statuses so far: delivered, blocked, dead_lettered
	Waiting int            // events waiting for another attempt
}

// Replay re-delivers the destination's dead-lettered events that failed at or after since and
// that no earlier replay took. They go through exactly what live delivery does: the consent
// decision already made (only forwarded events are ever on the topic) and the send-time
// re-check against the users' withdrawals and erasures — read here from the whole consent-state
// topic, so the retry horizon does not apply. Temporary failures are retried in process with
// the usual backoff, up to delivery.max_attempts more attempts; what fails again is
// dead-lettered again. Every attempt is audited; attempt numbers continue the event's history.
func (r *Runner) Replay(ctx context.Context, since time.Time, progress func(ReplayProgress)) (ReplayProgress, error) {
	p := ReplayProgress{Counts: map[string]int{}}
	admin, err := kafka.NewClient(r.cfg, r.log)
	if err != nil {
		return p, err
	}
	defer admin.Close()
	r.admin, r.horizon = admin, math.MaxInt64
	r.consent = NewWithdrawals(0)
	topic := r.cfg.Topic(config.DLQTopic(r.dest.Name))
	group := r.cfg.DLQReplayGroup(r.dest.Name)
	adm := kadm.NewClient(admin)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return p, fmt.Errorf("offsets of %s: %w", group, err)
	}
	starts := map[int32]int64{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			starts[o.Partition] = o.At
		}
	})
	dls, ends, err := ReadDeadLetters(ctx, r, starts)
	if err != nil {
		return p, err
	}
	var items []*item
	for _, d := range dls {
		if d.FailedAt.Before(since) {
			continue
		}
		it, err := itemFromRecord(d.record)
		if err != nil {
			p.Skipped++
			continue
		}
		it.limit = it.attempts + r.cfg.Delivery.MaxAttempts
		items = append(items, it)
	}
	p.Total = len(items)

	g, gctx := errgroup.WithContext(ctx)
	followCtx, stopFollow := context.WithCancel(gctx)
	g.Go(func() error { return r.consent.Follow(followCtx, r.cfg, r.log) })
	g.Go(func() error {
		defer stopFollow()
		return r.replayItems(gctx, admin, items, &p, progress)
	})
	if err := g.Wait(); err != nil {
		return p, err
	}
	offsets := kadm.Offsets{}
	for part, end := range ends {
		offsets.AddOffset(topic, part, end, -1)
	}
	if err := adm.CommitAllOffsets(context.WithoutCancel(ctx), group, offsets); err != nil {
		return p, fmt.Errorf("commit %s: %w", group, err)
	}
	return p, nil
}

func (r *Runner) replayItems(ctx context.Context, cl *kgo.Client, items []*item, p *ReplayProgress, progress func(ReplayProgress)) error {
	for len(items) > 0 {
		c := r.deliver(ctx, items, true)
		if err := cl.ProduceSync(context.WithoutCancel(ctx), c.out...).FirstErr(); err != nil {
			return fmt.Errorf("store delivery records: %w", err)
		}
		for _, s := range []string{StatusDelivered, StatusBlocked, StatusDeadLettered} {
			p.Counts[s] += c.counts[s]
		}
		items = items[:0]
		var due time.Time
		for _, l := range c.later {
			items = append(items, l.it)
			if l.notBefore.After(due) {
				due = l.notBefore
			}
		}
		p.Waiting = len(items)
		if progress != nil {
			progress(*p)
		}
		if err := sleep(ctx, due.Sub(r.now())); err != nil && len(items) > 0 {
			return fmt.Errorf("replay interrupted with %d events waiting for a retry (still on the dead-letter topic): %w", len(items), err)
		}
	}
	return nil
}
