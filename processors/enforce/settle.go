package enforce

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/kafka"
)

// A newly assigned partition's previous owner may still have a transaction open on its
// changelogs when the assignment arrives: franz-go commits a transaction whose offsets were
// already sent even when the heartbeat says a rebalance began (KIP-447), and a killed owner's
// transaction stays open until the broker aborts it. franz-go calls onAssigned before it fetches
// the partition's committed offsets, and that fetch (RequireStable) waits for the transaction to
// end; a restore that read the changelog up to its last stable offset before then would miss the
// transaction's consent records while the consumer resumes after its events: the events that
// follow would be decided without the user's refusal. So the restore waits until no transaction
// is open on the assigned partitions of a changelog (last stable offset = high watermark):
// nobody else writes there once the previous owner's last transaction has ended.

// settleTimeout bounds that wait: a killed owner's transaction is aborted after the processor's
// transaction timeout (10 s) plus the broker's check interval for timed-out transactions (10 s by
// default). Past it the restore fails, and the session is replaced (session.go).
const settleTimeout = 2 * time.Minute

// settleBackoff: the first checks come quickly (a commit's markers take milliseconds), later ones
// at most every 2 s while a killed owner's transaction waits for the broker's timeout.
var settleBackoff = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// settledEnds returns the topic's end offsets once no transaction is open on any of parts. A
// listing that fails (a topic created a moment ago, a broker restarting) is tried again until
// the same deadline.
func (p *Processor) settledEnds(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(settleTimeout)
	waited := false
	for attempt := 1; ; attempt++ {
		stable, err := kafka.EndOffsets(ctx, cl, topic)
		var high kadm.ListedOffsets
		if err == nil {
			if high, err = adm.ListEndOffsets(ctx, topic); err == nil {
				err = high.Error()
			}
		}
		var open []int32
		if err == nil {
			if open = openTransactions(stable, high, topic, parts); len(open) == 0 {
				if waited {
					p.log.Info("changelog settled", zap.String("topic", topic), zap.Int("checks", attempt))
				}
				return stable, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
			}
			return nil, fmt.Errorf("a transaction stayed open on %s partitions %v for %s", topic, open, settleTimeout)
		}
		switch {
		case err != nil:
			p.log.Warn("cannot list the changelog's offsets yet; retrying", zap.String("topic", topic), zap.Error(err))
		case !waited:
			waited = true
			p.metrics.settleWaits.Inc()
			p.log.Info("waiting for the previous owner's transaction on the changelog to end before restoring",
				zap.String("topic", topic), zap.Int32s("partitions", open))
		}
		_ = backoff.Sleep(ctx, settleBackoff.Equal(attempt)) // a cancelled ctx ends the loop above
	}
}

// openTransactions lists the partitions of parts whose last stable offset (stable; a partition
// missing there is empty) is behind their high watermark.
func openTransactions(stable map[int32]int64, high kadm.ListedOffsets, topic string, parts []int32) []int32 {
	var open []int32
	for _, part := range parts {
		if h, ok := high.Lookup(topic, part); ok && h.Offset > stable[part] {
			open = append(open, part)
		}
	}
	return open
}
