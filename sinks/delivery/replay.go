package delivery

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Replayer re-delivers a destination's dead letters (tollgate dlq replay) through the same engine
// as live delivery. Its runner differs in two ways only: it reads the users' withdrawals from the
// whole consent-state topic, so no retry horizon applies, and it keeps temporary failures in
// process instead of handing them to the retry topic.
type Replayer struct {
	r *Runner
}

// NewReplayer returns the replayer of one destination.
func NewReplayer(cfg *config.Config, dest *policy.Destination, adapter sdk.Adapter, log *zap.Logger) *Replayer {
	r := NewRunner(cfg, dest, adapter, log)
	r.horizon = math.MaxInt64
	r.consent = NewWithdrawals(0)
	return &Replayer{r: r}
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
func (rp *Replayer) Replay(ctx context.Context, since time.Time, progress func(ReplayProgress)) (ReplayProgress, error) {
	r := rp.r
	p := ReplayProgress{Counts: map[string]int{}}
	admin, err := kafka.NewClient(r.cfg, r.log)
	if err != nil {
		return p, err
	}
	defer admin.Close()
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
	dls, ends, err := ReadDeadLetters(ctx, r.cfg, r.dest.Name, r.log, starts)
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
	stopLedger, err := r.startLedger(followCtx, g)
	if err != nil {
		stopFollow()
		return p, err
	}
	defer stopLedger()
	g.Go(func() error { return r.consent.Follow(followCtx, r.cfg, r.log) })
	g.Go(func() error {
		defer stopFollow()
		return replayItems(r, gctx, admin, items, &p, progress)
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

func replayItems(r *Runner, ctx context.Context, cl *kgo.Client, items []*item, p *ReplayProgress, progress func(ReplayProgress)) error {
	parts := make([]int32, 0, len(items))
	for _, it := range items {
		if !slices.Contains(parts, it.part) {
			parts = append(parts, it.part)
		}
	}
	// An earlier replay stopped mid-request leaves intents without outcome: in doubt.
	if err := r.settleDoubts(ctx, sourceReplay, parts); err != nil {
		return err
	}
	for len(items) > 0 {
		c := r.deliver(ctx, sourceReplay, items, true)
		if err := r.journal.flush(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		if err := cl.ProduceSync(context.WithoutCancel(ctx), r.records(c, false)...).FirstErr(); err != nil {
			return fmt.Errorf("store delivery records: %w", err)
		}
		for _, s := range []string{StatusDelivered, StatusBlocked, StatusDeadLettered} {
			p.Counts[s] += c.counts[s]
		}
		var due time.Time
		items, due = c.later()
		p.Waiting = len(items)
		if progress != nil {
			progress(*p)
		}
		if err := backoff.Sleep(ctx, due.Sub(r.now())); err != nil && len(items) > 0 {
			return fmt.Errorf("replay interrupted with %d events waiting for a retry (still on the dead-letter topic): %w", len(items), err)
		}
	}
	return nil
}
