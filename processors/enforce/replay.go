package enforce

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// ReplayOptions select what a replay re-decides.
type ReplayOptions struct {
	From, To    time.Time // event time range; a zero To means no upper bound
	Destination string    // only this destination; "" for all
	// RunID marks every decision of the run; "" makes a new one (a UUID).
	RunID string
	// Progress, if set, is called now and then (after each batch of decisions written, and at
	// the end) with the raw records read so far and the records the raw topic holds in all.
	Progress func(read, total int64)
	// Select, if set, picks the events to decide (Redecide); the others are skipped undecided.
	Select func(*schemas.Event) bool
}

// ReplayResult summarises a replay.
type ReplayResult struct {
	RunID     string
	Events    int // events in the time range
	Decisions int
}

// Replay re-runs consent enforcement with the policy now configured over the raw topic, writing
// decisions that carry a fresh run id to the decisions topic (they never reach a vendor: a replay
// answers "what would the current policy decide", for `tollgate audit diff`; `tollgate repair`
// then delivers what it newly allows). It reads the raw topic from its start, so each event is
// judged against the consent its user had recorded at that point of the log, and decides only
// the events whose time is in the range.
func Replay(ctx context.Context, cfg *config.Config, log *zap.Logger, opt ReplayOptions) (ReplayResult, error) {
	res := ReplayResult{RunID: opt.RunID}
	if res.RunID == "" {
		res.RunID = uuid.NewString()
	}
	opt.RunID = res.RunID
	producer, err := kafka.NewClient(cfg, log)
	if err != nil {
		return res, err
	}
	defer producer.Close()
	var out []*kgo.Record
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		err := producer.ProduceSync(ctx, out...).FirstErr()
		out = out[:0]
		if err != nil {
			return fmt.Errorf("write replay decisions: %w", err)
		}
		return nil
	}
	err = Redecide(ctx, cfg, log, opt, func(ev *schemas.Event, outs []consent.Outcome) error {
		out = replayEvent(cfg, ev, outs, &res, out)
		if len(out) >= 5000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return res, err
}

// Redecide walks the raw topic from its start to its end as of the call, keeping every user's
// consent as the log records it (the processor's store and merge rule, in a temporary folder, so
// memory stays flat however many users the log holds), and calls fn with each event whose time
// is in opt's range and that opt.Select takes, and its decisions under the policy now configured
// (carrying opt.RunID; only opt.Destination's when set). An error from fn stops the walk.
// Replay writes those decisions; `tollgate repair` delivers the ones it repairs.
func Redecide(ctx context.Context, cfg *config.Config, log *zap.Logger, opt ReplayOptions, fn func(*schemas.Event, []consent.Outcome) error) error {
	topic := cfg.Topic(config.TopicRaw)
	cl, err := kafka.NewClient(cfg, log)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kafka.EndOffsets(ctx, cl, topic)
	if err != nil {
		return err
	}
	total, err := recordsToRead(ctx, cl, topic, ends)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tollgate-replay-")
	if err != nil {
		return fmt.Errorf("replay state folder: %w", err)
	}
	defer os.RemoveAll(dir)
	store := newStateStore(dir, cfg.Dedup.Window)
	defer store.closeAll()
	walkCtx, stop := context.WithCancel(ctx)
	defer stop()
	var read int64
	var walkErr error
	err = kafka.ReadToEnd(walkCtx, cfg, log, topic, ends, func(r *kgo.Record) {
		if walkErr != nil {
			return
		}
		read++
		if walkErr = redecideRecord(cfg, r, store, opt, fn); walkErr != nil {
			stop()
		}
		if opt.Progress != nil && read%1000 == 0 {
			opt.Progress(read, total)
		}
	})
	if walkErr != nil {
		return walkErr
	}
	if err == nil && opt.Progress != nil {
		opt.Progress(total, total) // at the end: transaction markers count as read too
	}
	return err
}

func redecideRecord(cfg *config.Config, r *kgo.Record, store *stateStore, opt ReplayOptions, fn func(*schemas.Event, []consent.Outcome) error) error {
	if schemas.ConsentUpdates.Is(r.Value) {
		if u, err := schemas.ConsentUpdates.Decode(r.Value); err == nil {
			if err := store.apply(r.Partition, &u); err != nil {
				return fmt.Errorf("replay state: %w", err)
			}
		}
		return nil
	}
	ev, err := schemas.Events.Decode(r.Value)
	if err != nil || !inRange(ev.TimestampMs, opt.From, opt.To) || (opt.Select != nil && !opt.Select(&ev)) {
		return nil
	}
	st, err := store.state(r.Partition, ev.UserKey())
	if err != nil {
		return fmt.Errorf("replay state: %w", err)
	}
	outs := consent.Decide(&ev, st, cfg.Policy, time.Now(), opt.RunID)
	if opt.Destination != "" {
		kept := outs[:0]
		for _, o := range outs {
			if o.Decision.Destination == opt.Destination {
				kept = append(kept, o)
			}
		}
		outs = kept
	}
	return fn(&ev, outs)
}

// replayEvent appends an event's replayed decisions to out, as one decision record (the
// processor's form), and counts them.
func replayEvent(cfg *config.Config, ev *schemas.Event, outs []consent.Outcome, res *ReplayResult, out []*kgo.Record) []*kgo.Record {
	res.Events++
	set := newDecisionRecord(cfg.Topic(config.TopicDecisions), []byte(ev.UserKey()), len(outs))
	for i := range outs {
		res.Decisions++
		set.add(&outs[i].Decision)
	}
	return set.appendTo(out)
}

// replayRecord is one raw record of a replay: its event's decision record (none for a consent
// update or an event out of range).
func replayRecord(cfg *config.Config, r *kgo.Record, store *stateStore, opt ReplayOptions, res *ReplayResult) ([]*kgo.Record, error) {
	opt.RunID = res.RunID
	var out []*kgo.Record
	err := redecideRecord(cfg, r, store, opt, func(ev *schemas.Event, outs []consent.Outcome) error {
		out = replayEvent(cfg, ev, outs, res, out)
		return nil
	})
	return out, err
}

func inRange(ms int64, from, to time.Time) bool {
	t := time.UnixMilli(ms)
	return !t.Before(from) && (to.IsZero() || t.Before(to))
}

// recordsToRead is how many records (data and transaction markers) lie between the start of
// each partition, which retention may have moved past 0, and its end in ends.
func recordsToRead(ctx context.Context, cl *kgo.Client, topic string, ends map[int32]int64) (int64, error) {
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	var total int64
	for p, end := range ends {
		start := int64(0)
		if o, ok := starts.Lookup(topic, p); ok && o.Err == nil {
			start = o.Offset
		}
		total += max(end-start, 0)
	}
	return total, nil
}
