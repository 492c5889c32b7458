package enforce

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
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

var settleBackoff = backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second}

// settledEnds returns the topic's end offsets once no transaction is open on any of parts.
func (p *Processor) settledEnds(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(settleTimeout)
	for attempt := 1; ; attempt++ {
		stable, err := endOffsetsPatiently(ctx, p.log, cl, topic)
		if err != nil {
			return nil, err
		}
		high, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = high.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
		}
		open := openTransactions(stable, high, topic, parts)
		if len(open) == 0 {
			if attempt > 1 {
				p.log.Info("changelog settled", zap.String("topic", topic), zap.Int("checks", attempt))
			}
			return stable, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("a transaction stayed open on %s partitions %v for %s", topic, open, settleTimeout)
		}
		if attempt == 1 {
			p.metrics.settleWaits.Inc()
			p.log.Info("waiting for the previous owner's transaction on the changelog to end before restoring",
				zap.String("topic", topic), zap.Int32s("partitions", open))
		}
		if err := backoff.Sleep(ctx, settleBackoff.Equal(attempt)); err != nil {
			return nil, err
		}
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
