package enforce

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
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
	// Progress, if set, is called now and then with the raw records read so far and in all.
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
	res := ReplayResult{RunID: uuid.NewString()}
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
	var total, read int64
	for _, end := range ends {
		total += end
	}
	store := newStateStore()
	var out []*kgo.Record
	var flushErr error
	flush := func() {
		if flushErr == nil && len(out) > 0 {
			flushErr = producer.ProduceSync(ctx, out...).FirstErr()
		}
		out = out[:0]
		if opt.Progress != nil {
			opt.Progress(read, total)
		}
	}
	err = kafka.ReadToEnd(ctx, cfg, log, topic, ends, func(r *kgo.Record) {
		read++
		out = append(out, replayRecord(cfg, r, store, opt, &res)...)
		if len(out) >= 5000 {
			flush()
		}
	})
	flush()
	if err == nil && flushErr != nil {
		err = fmt.Errorf("write replay decisions: %w", flushErr)
	}
	return res, err
}

func replayRecord(cfg *config.Config, r *kgo.Record, store *stateStore, opt ReplayOptions, res *ReplayResult) []*kgo.Record {
	if schemas.ConsentUpdates.Is(r.Value) {
		if u, err := schemas.ConsentUpdates.Decode(r.Value); err == nil {
			store.apply(r.Partition, &u)
		}
		return nil
	}
	ev, err := schemas.Events.Decode(r.Value)
	if err != nil || !inRange(ev.TimestampMs, opt.From, opt.To) {
		return nil
	}
	res.Events++
	st := store.state(r.Partition, ev.UserKey())
	var recs []*kgo.Record
	for _, o := range consent.Decide(&ev, st, cfg.Policy, time.Now(), res.RunID) {
		if opt.Destination != "" && o.Decision.Destination != opt.Destination {
			continue
		}
		res.Decisions++
		recs = append(recs, encodeRecord(cfg.Topic(config.TopicDecisions), ev.UserKey(), schemas.Decisions, &o.Decision))
	}
	return recs
}

func inRange(ms int64, from, to time.Time) bool {
	t := time.UnixMilli(ms)
	return !t.Before(from) && (to.IsZero() || t.Before(to))
}
