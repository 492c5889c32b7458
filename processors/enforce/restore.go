package enforce

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/schemas"
)

// onAssigned brings the stores of newly assigned raw partitions up to date with their changelogs
// before any of their records is processed (franz-go runs this callback inside the poll, so no
// fetch of these partitions is handed out before it returns).
func (p *Processor) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[p.cfg.Topic(config.TopicRaw)]
	if len(parts) == 0 {
		return
	}
	start := time.Now()
	// Our own predecessor (this instance killed and restarted) may have left a transaction open:
	// loading the producer id now fences it and has the broker abort it, so the restore's wait for
	// open transactions (settle.go) does not last until the broker's timeout.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		p.stop(fmt.Errorf("%w: load the producer id: %w", errRestore, err))
		return
	}
	n, err := p.restore(ctx, cl, parts)
	if err != nil {
		// Processing without the users' recorded withdrawals or the ids already seen could
		// forward what they refused or a resend: stop the processor instead (Run returns this
		// before deciding any record), and let another member (or a restart) take over.
		p.stop(fmt.Errorf("%w: %w", errRestore, err))
		return
	}
	if err := p.ahead.add(ctx, p.cfg.ProcessorGroup(), parts); err != nil {
		p.stop(fmt.Errorf("start consent lookahead: %w", err))
		return
	}
	p.metrics.restored.Add(float64(n))
	took := time.Since(start)
	// A restore decodes every changelog record it reads and leaves it as garbage (the state is on
	// disk): hand that memory back to the OS now rather than keeping the peak resident.
	debug.FreeOSMemory()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	p.log.Info("consent state restored", zap.Int32s("partitions", parts), zap.Int("records", n),
		zap.Duration("took", took), zap.Uint64("heap_bytes", mem.HeapAlloc))
}

// onRevoked closes the stores of partitions this process no longer owns.
func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if parts := revoked[p.cfg.Topic(config.TopicRaw)]; len(parts) > 0 {
		if err := p.state.closePartitions(parts); err != nil {
			p.log.Warn("closing state stores", zap.Error(err))
		}
		p.ahead.remove(parts)
	}
}

// changelog is one changelog topic's read plan for the partitions being restored.
type changelog struct {
	topic        string
	ends, starts map[int32]int64 // starts: where the log begins (retention may have moved it)
}

func (p *Processor) plan(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (changelog, error) {
	c := changelog{topic: topic, starts: map[int32]int64{}}
	var err error
	if c.ends, err = p.settledEnds(ctx, cl, topic, parts); err != nil {
		return c, err
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err != nil {
		return c, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			c.starts[o.Partition] = o.Offset
		}
	})
	return c, nil
}

// restore opens each partition's store and reads both changelogs (consent state, remembered
// ids) from just after the offset the store has applied to their end. A store that is ahead of
// a changelog (the topic was recreated), behind the consent log's start (records it never saw
// are gone) or of the layout before packed ids is deleted and rebuilt from the start. It returns the changelog records read.
func (p *Processor) restore(ctx context.Context, cl *kgo.Client, parts []int32) (int, error) {
	consentLog, err := p.plan(ctx, cl, p.cfg.Topic(config.TopicState), parts)
	if err != nil {
		return 0, err
	}
	dedupLog, err := p.plan(ctx, cl, p.cfg.Topic(config.TopicDedupIDs), parts)
	if err != nil {
		return 0, err
	}
	heldLog, err := p.plan(ctx, cl, p.cfg.Topic(config.TopicHeld), parts)
	if err != nil {
		return 0, err
	}
	logs := []changelog{consentLog, dedupLog, heldLog}
	from := map[string]map[int32]int64{consentLog.topic: {}, dedupLog.topic: {}, heldLog.topic: {}}
	for _, part := range parts {
		db, err := p.state.open(part)
		if err != nil {
			return 0, err
		}
		// A store of before the packed ids keys them by user and event id: rebuilt.
		stale := db.Legacy()
		for _, c := range logs {
			off, ok, err := db.Offset(c.topic)
			if err != nil {
				return 0, err
			}
			// The compacted logs hold full states: a store behind their start missed some.
			behind := c.topic != dedupLog.topic && ok && off+1 < c.starts[part]
			if ok && off >= c.ends[part] || behind {
				stale = true
			}
			if ok {
				// Ids the dedup log dropped by retention are past the window: start at its start.
				from[c.topic][part] = max(off+1, c.starts[part])
			}
		}
		if stale {
			p.log.Warn("state store does not match the changelog; rebuilding it", zap.Int32("partition", part))
			if _, err := p.state.rebuild(part); err != nil {
				return 0, err
			}
			for _, c := range logs {
				delete(from[c.topic], part)
			}
		}
	}
	n := 0
	for _, c := range logs {
		got, err := p.readChangelog(ctx, c, parts, from[c.topic])
		n += got
		if err != nil {
			return n, err
		}
	}
	if err := p.restoreHolds(ctx, parts); err != nil {
		return n, err
	}
	// The stores keep no write-ahead log: flush what was restored (and save the id filters), so
	// a crash from here on reads the changelog from this point, not from the start again.
	for _, part := range parts {
		if db := p.state.store(part); db != nil {
			if err := db.Checkpoint(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// restoreBatch bounds how many changelog records go into one store batch during a restore.
const restoreBatch = 10_000

// readChangelog applies a changelog's records from the given offsets to the end to the stores,
// with each batch's last offset beside the data, so an interrupted restore resumes where it was.
func (p *Processor) readChangelog(ctx context.Context, c changelog, parts []int32, from map[int32]int64) (int, error) {
	ends := map[int32]int64{}
	for _, part := range parts {
		if end, ok := c.ends[part]; ok {
			ends[part] = end
		}
	}
	consentLog, heldLog := c.topic == p.cfg.Topic(config.TopicState), c.topic == p.cfg.Topic(config.TopicHeld)
	oldest := p.now().Add(-p.cfg.Dedup.Window).UnixMilli()
	batches := map[int32]*statestore.Batch{}
	var applyErr error
	flush := func(part int32) {
		if b := batches[part]; b != nil {
			delete(batches, part)
			if err := b.Commit(); err != nil && applyErr == nil {
				applyErr = err
			}
		}
	}
	n := 0
	err := kafka.ReadRange(ctx, p.cfg, p.log, c.topic, from, ends, func(r *kgo.Record) {
		b := batches[r.Partition]
		if b == nil {
			db := p.state.store(r.Partition)
			if db == nil {
				return
			}
			b = db.NewBatch()
			batches[r.Partition] = b
		}
		n++
		if heldLog {
			putHeld(b, r)
		} else if consentLog {
			u, err := schemas.ConsentUpdates.Decode(r.Value)
			if err != nil {
				p.log.Warn("skipping undecodable consent-state record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
			} else {
				b.PutConsent(u.UserKey, r.Value) // a full state: it replaces
			}
		} else if err := putIDs(b, r.Value, oldest); err != nil {
			p.log.Warn("skipping undecodable dedup record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
		}
		b.SetOffset(c.topic, r.Offset)
		if b.Len() >= restoreBatch {
			flush(r.Partition)
		}
	})
	for part := range batches {
		flush(part)
	}
	if err != nil {
		return n, fmt.Errorf("restore from %s: %w", c.topic, err)
	}
	return n, applyErr
}

// putIDs applies a dedup changelog record to b: a transaction's packed ids, or (written before
// they were packed, and still on the topic for a window after an upgrade) one id's Duplicate.
// Ids first seen before oldest are past the window and skipped.
func putIDs(b *statestore.Batch, v []byte, oldest int64) error {
	if !schemas.DedupIDsCodec.Is(v) {
		d, err := schemas.Duplicates.Decode(v)
		if err == nil && d.FirstSeenMs >= oldest {
			b.PutSeen(statestore.IDOf(d.UserKey, d.EventID), statestore.Seen{FirstMs: d.FirstSeenMs, LastMs: d.LastSeenMs, Resends: uint32(d.Resends)})
		}
		return err
	}
	d, err := schemas.DedupIDsCodec.Decode(v)
	if err != nil {
		return err
	}
	return d.Each(func(e schemas.DedupEntry) {
		if e.FirstMs >= oldest {
			b.PutSeen(e.ID, statestore.Seen{FirstMs: e.FirstMs, LastMs: e.LastMs, Resends: e.Resends})
		}
	})
}

// putHeld applies a held-events changelog record: the user's list, or a tombstone when none is
// held any more.
func putHeld(b *statestore.Batch, r *kgo.Record) {
	if r.Value == nil {
		b.DeleteHeld(string(r.Key))
	} else {
		b.PutHeld(string(r.Key), r.Value)
	}
}
