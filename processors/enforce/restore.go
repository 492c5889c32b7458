package enforce

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// onAssigned restores the consent state of newly assigned raw partitions from the changelog
// before any of their records is processed (franz-go runs this callback inside the poll, so no
// fetch of these partitions is handed out before it returns).
func (p *Processor) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[p.cfg.Topic(config.TopicRaw)]
	if len(parts) == 0 {
		return
	}
	start := time.Now()
	n, err := restoreState(ctx, p.cfg, p.log, cl, p.state, parts)
	if err != nil {
		// Processing without the users' recorded withdrawals could forward what they refused:
		// stop the processor instead (Run returns this before deciding any record), and let
		// another member (or a restart) take over.
		p.stop(fmt.Errorf("restore consent state: %w", err))
		return
	}
	if err := p.ahead.add(ctx, p.cfg.ProcessorGroup(), parts); err != nil {
		p.stop(fmt.Errorf("start consent lookahead: %w", err))
		return
	}
	took := time.Since(start)
	// A restore reads the whole changelog of its partitions and leaves most of it as garbage; hand
	// that back to the OS now rather than keeping the peak resident until the next GC cycles.
	debug.FreeOSMemory()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	p.log.Info("consent state restored", zap.Int32s("partitions", parts), zap.Int("records", n),
		zap.Int("users_held", p.state.len()), zap.Duration("took", took), zap.Uint64("heap_bytes", mem.HeapAlloc))
}

// onRevoked drops the state of partitions this process no longer owns.
func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if parts := revoked[p.cfg.Topic(config.TopicRaw)]; len(parts) > 0 {
		p.state.dropPartitions(parts)
		p.ahead.remove(parts)
	}
}

// endOffsetsPatiently lists a topic's end offsets, retrying for up to 30 s: a topic created a
// moment ago may not be known to every broker yet, and a broker may be restarting. Giving up
// stops the processor (see onAssigned), so it is worth waiting a little first.
func endOffsetsPatiently(ctx context.Context, log *zap.Logger, cl *kgo.Client, topic string) (map[int32]int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ends, err := kafka.EndOffsets(ctx, cl, topic)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return ends, err
		}
		log.Warn("cannot list end offsets yet; retrying", zap.String("topic", topic), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// restoreState loads every user's latest state of the given partitions of the compacted
// consent-state topic into the store. The topic is keyed like the raw topic and has as many
// partitions, so partition n of it holds exactly the users of raw partition n.
func restoreState(ctx context.Context, cfg *config.Config, log *zap.Logger, cl *kgo.Client, store *stateStore, parts []int32) (int, error) {
	topic := cfg.Topic(config.TopicState)
	all, err := endOffsetsPatiently(ctx, log, cl, topic)
	if err != nil {
		return 0, err
	}
	ends := map[int32]int64{}
	for _, p := range parts {
		if end, ok := all[p]; ok {
			ends[p] = end
		}
	}
	n := 0
	err = kafka.ReadToEnd(ctx, cfg, log, topic, ends, func(r *kgo.Record) {
		u, err := schemas.ConsentUpdates.Decode(r.Value)
		if err != nil {
			log.Warn("skipping undecodable consent-state record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
			return
		}
		store.put(r.Partition, u.UserKey, store.book.merge(userState{}, &u)) // a full state: it replaces
		n++
	})
	if err != nil {
		return n, fmt.Errorf("restore from %s: %w", topic, err)
	}
	return n, nil
}
