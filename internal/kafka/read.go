package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// EndOffsets returns the last stable offset of each non-empty partition of a topic: where a
// read_committed reader that started now would be done.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	var firstErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err != nil && firstErr == nil:
			firstErr = fmt.Errorf("list offsets of %s[%d]: %w", topic, o.Partition, o.Err)
		case o.Offset > 0:
			out[o.Partition] = o.Offset
		}
	})
	return out, firstErr
}

// ReadToEnd reads the committed records of the given partitions from their start up to the
// offsets in ends (see EndOffsets), calling fn for every data record in order per partition.
// Control records (transaction markers) are read too, so a partition that ends in a marker is
// recognised as finished, but they are not passed to fn.
func ReadToEnd(ctx context.Context, cfg *config.Config, log *zap.Logger, topic string, ends map[int32]int64, fn func(*kgo.Record)) error {
	return ReadRange(ctx, cfg, log, topic, nil, ends, fn)
}

// ReadRange is ReadToEnd from the offsets in starts (a partition missing there is read from its
// start). A partition whose start is at or past its end is not read.
func ReadRange(ctx context.Context, cfg *config.Config, log *zap.Logger, topic string, starts, ends map[int32]int64, fn func(*kgo.Record)) error {
	remaining := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		start, ok := starts[p]
		if ok && start >= end {
			continue
		}
		remaining[p] = end
		parts[p] = kgo.NewOffset().AtStart()
		if ok {
			parts[p] = kgo.NewOffset().At(start)
		}
	}
	if len(remaining) == 0 {
		return nil
	}
	cl, err := NewClient(cfg, log,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return // past the end captured at the start
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}
