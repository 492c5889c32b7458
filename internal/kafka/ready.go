package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tollgate-dev/tollgate/internal/backoff"
)

// waitServable polls until the broker answers a ListOffsets for every partition of topics.
// A KRaft broker acknowledges CreateTopics once the controller committed the topic, and applies
// the metadata a moment later: until then it answers UNKNOWN_TOPIC_OR_PARTITION, and a component
// started right after EnsureTopics (the processor restoring its consent state) failed on it.
func waitServable(ctx context.Context, adm *kadm.Client, topics []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		offs, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = offs.Error()
		}
		if err == nil && len(offs) == len(topics) {
			return nil
		}
		if backoff.Sleep(ctx, servableBackoff.Equal(attempt)) != nil {
			return fmt.Errorf("topics not servable after %s: %w", timeout, cmp.Or(err, ctx.Err()))
		}
	}
}

// servableBackoff: the broker applies new metadata within a few hundred ms, so the waits start
// short; they grow to 1 s so a slow controller is not asked ten times a second for long.
var servableBackoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: time.Second}

// Unreachable reports whether err says the cluster could not be reached or was not ready (a
// broker restarting, no controller yet), rather than that it refused the request: worth
// trying again a little later.
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || kerr.IsRetriable(err)
}
