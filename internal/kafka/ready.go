package kafka

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// waitServable polls until the broker answers a ListOffsets for every partition of topics.
// A KRaft broker acknowledges CreateTopics once the controller committed the topic, and applies
// the metadata a moment later: until then it answers UNKNOWN_TOPIC_OR_PARTITION, and a component
// started right after EnsureTopics (the processor restoring its consent state) failed on it.
func waitServable(ctx context.Context, adm *kadm.Client, topics []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		offs, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = offs.Error()
		}
		if err == nil && len(offs) == len(topics) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics not servable after %s: %w", timeout, cmp.Or(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
