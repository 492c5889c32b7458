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
}

// ReplayResult summarises a replay.
type ReplayResult struct {
	RunID     string
	Events    int // events in the time range
	Decisions int
}

// Replay re-runs consent enforcement with the policy now configured over the raw topic, writing
// decisions that carry a fresh run id to the decisions topic (they never reach a vendor: a replay
// answers "what would the current policy decide", for `tollgate audit diff`). It reads the raw
// topic from its start, so each event is judged against the consent its user had recorded at that
// point of the log, and decides only the events whose time is in the range.
func Replay(ctx context.Context, cfg *config.Config, log *zap.Logger, opt ReplayOptions) (ReplayResult, error) {
	res := ReplayResult{RunID: opt.RunID}
	if res.RunID == "" {
		res.RunID = uuid.NewString()
	}
	topic := cfg.Topic(config.TopicRaw)
	producer, err := kafka.NewClient(cfg, log)
	if err != nil {
		return res, err
	}
	defer producer.Close()
	ends, err := kafka.EndOffsets(ctx, producer, topic)
	if err != nil {
		return res, err
	}
	total, err := recordsToRead(ctx, producer, topic, ends)
	if err != nil {
		return res, err
	}
	var read int64
	// The consent state replay builds as it goes, with the processor's store and merge rule, in
	// a temporary folder (memory stays flat however many users the log holds).
	dir, err := os.MkdirTemp("", "tollgate-replay-")
	if err != nil {
		return res, fmt.Errorf("replay state folder: %w", err)
	}
	defer os.RemoveAll(dir)
	store := newStateStore(dir, cfg.Dedup.Window)
	defer store.closeAll()
	var stateErr error
	var out []*kgo.Record
	var flushErr error
	flush := func() {
		if flushErr == nil && len(out) > 0 {
			flushErr = producer.ProduceSync(ctx, out...).FirstErr()
		}
		out = out[:0]
	}
	err = kafka.ReadToEnd(ctx, cfg, log, topic, ends, func(r *kgo.Record) {
		read++
		recs, err := replayRecord(cfg, r, store, opt, &res)
		if err != nil && stateErr == nil {
			stateErr = err
		}
		out = append(out, recs...)
		if len(out) >= 5000 {
			flush()
		}
		if opt.Progress != nil && read%1000 == 0 {
			opt.Progress(read, total)
		}
	})
	flush()
	if err == nil && opt.Progress != nil {
		opt.Progress(total, total) // at the end: transaction markers count as read too
	}
	if err == nil && stateErr != nil {
		err = fmt.Errorf("replay state: %w", stateErr)
	}
	if err == nil && flushErr != nil {
		err = fmt.Errorf("write replay decisions: %w", flushErr)
	}
	return res, err
}

func replayRecord(cfg *config.Config, r *kgo.Record, store *stateStore, opt ReplayOptions, res *ReplayResult) ([]*kgo.Record, error) {
	if schemas.ConsentUpdates.Is(r.Value) {
		if u, err := schemas.ConsentUpdates.Decode(r.Value); err == nil {
			return nil, store.apply(r.Partition, &u)
		}
		return nil, nil
	}
	ev, err := schemas.Events.Decode(r.Value)
	if err != nil || !inRange(ev.TimestampMs, opt.From, opt.To) {
		return nil, nil
	}
	res.Events++
	st, err := store.state(r.Partition, ev.UserKey())
	if err != nil {
		return nil, err
	}
	outs := consent.Decide(&ev, st, cfg.Policy, time.Now(), res.RunID)
	set := newDecisionRecord(cfg.Topic(config.TopicDecisions), []byte(ev.UserKey()), len(outs))
	for i := range outs {
		if opt.Destination != "" && outs[i].Decision.Destination != opt.Destination {
			continue
		}
		res.Decisions++
		set.add(&outs[i].Decision)
	}
	return set.appendTo(nil), nil
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
