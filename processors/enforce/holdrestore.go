package enforce

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// restoreHolds rebuilds the index of held events of restored partitions and fetches, from the
// raw topic, the held events a store has no copy of (a store rebuilt on another host: the
// changelog holds only their offsets). The raw topic keeps them: its retention is days, a hold's
// window at most one.
func (p *Processor) restoreHolds(ctx context.Context, parts []int32) error {
	missing := map[int32]map[int64]bool{}
	for _, part := range parts {
		db := p.state.store(part)
		if db == nil {
			continue
		}
		if err := p.state.holds.index(part, db); err != nil {
			return err
		}
		err := db.EachHeld(func(_ string, v []byte) error {
			h, err := schemas.HeldEventsCodec.Decode(v)
			if err != nil {
				return err
			}
			for _, e := range h.Events {
				if _, ok, err := db.Body(e.Offset); err != nil {
					return err
				} else if !ok {
					if missing[part] == nil {
						missing[part] = map[int64]bool{}
					}
					missing[part][e.Offset] = true
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("held events of partition %d: %w", part, err)
		}
	}
	p.metrics.held.Set(float64(p.state.holds.held()))
	if len(missing) == 0 {
		return nil
	}
	return p.fetchHeld(ctx, missing)
}

// fetchHeld reads the raw records at the missing offsets into the stores.
func (p *Processor) fetchHeld(ctx context.Context, missing map[int32]map[int64]bool) error {
	from, ends := map[int32]int64{}, map[int32]int64{}
	for part, offs := range missing {
		for off := range offs {
			if cur, ok := from[part]; !ok || off < cur {
				from[part] = off
			}
			ends[part] = max(ends[part], off+1)
		}
	}
	found := 0
	err := kafka.ReadRange(ctx, p.cfg, p.log, p.cfg.Topic(config.TopicRaw), from, ends, func(r *kgo.Record) {
		if !missing[r.Partition][r.Offset] {
			return
		}
		if db := p.state.store(r.Partition); db != nil {
			b := db.NewBatch()
			b.PutBody(r.Offset, r.Value)
			if b.Commit() == nil {
				found++
			}
		}
	})
	if err != nil {
		return fmt.Errorf("fetch held events from the raw topic: %w", err)
	}
	want := 0
	for _, offs := range missing {
		want += len(offs)
	}
	p.log.Info("held events fetched from the raw topic", zap.Int("events", found), zap.Int("missing", want-found))
	if found < want {
		return fmt.Errorf("%d held events are no longer on the raw topic", want-found)
	}
	return nil
}
