package enforce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
)

// A session is one transactional client in the processor group: the producer, its transactional
// id's epoch and the group membership together. When it fails (a producer fenced after a broker
// failover, a transaction the coordinator aborted on timeout, a restore that could not finish)
// it cannot be repaired: franz-go's transactional errors are not retryable on the same client.
// Kafka Streams' answer since exactly-once v2 is ours: abort what is in flight, close the
// client, build a new one with the same transactional id (its new epoch fences the old one and
// aborts whatever the broker still holds open), rejoin the group and restore the stores from
// their changelogs. Every staged change of the failed batch dies with its stagedState (only a
// committed transaction reaches a store), and the consumer resumes at the committed offsets, so
// the batch is decided again, once.

// recoverPolicy spaces the attempts to bring a failed session back: a broker failover takes
// 10–20 s here, so the waits grow to that order and beyond.
var recoverPolicy = backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}

// maxRecoveries is how many sessions in a row may fail before any of them committed a
// transaction or stayed up for healthyAfter; then Run returns the last error and the process
// exits for its supervisor. With recoverPolicy that is a couple of minutes of trying: longer
// than any failover, short enough that a broken deployment (an ACL that refuses the
// transactional id) shows as a crash loop rather than a silent stall.
const maxRecoveries = 8

// healthyAfter is how long a session must run for its end to count as a new failure rather than
// one more of a series (an idle processor commits nothing to prove it recovered).
const healthyAfter = time.Minute

// abortTimeout bounds the abort of a failed session's open transaction. It is best effort: a
// fenced producer cannot abort, and the next session's producer aborts it on the broker anyway.
const abortTimeout = 10 * time.Second

// runSessions runs sessions until ctx ends, replacing each failed one.
func (p *Processor) runSessions(ctx context.Context) error {
	failures := 0 // sessions in a row that failed without committing
	for {
		sess, err := p.newSession()
		if err != nil {
			return err // options the client refuses: the configuration, not the cluster
		}
		started := time.Now()
		committed, err := p.consume(ctx, sess)
		p.endSession(sess)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if committed || time.Since(started) >= healthyAfter {
			failures = 0
		}
		failures++
		if failures > maxRecoveries {
			return fmt.Errorf("processor session failed %d times in a row: %w", failures, err)
		}
		reason := recoveryReason(err)
		wait := recoverPolicy.Equal(failures)
		p.metrics.recoveries.WithLabelValues(reason).Inc()
		p.log.Warn("processor session failed; replacing it in-process (new transactional client, group rejoined, stores restored)",
			zap.String("reason", reason), zap.Int("attempt", failures), zap.Duration("backoff", wait), zap.Error(err))
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// The commit interval: a batch, and so a transaction, is what the broker has gathered once
// commitBytes of raw events are there or commitInterval has passed, whichever comes first (the
// broker holds the fetch). Under load a fetch fills at once and nothing waits. At a trickle
// (2,000 single-event requests/s) every produce woke the consumer with a fetch response of a few
// events, and each such poll was a transaction: with this and the lookahead's steps the
// processor's CPU there fell from 0.19 to 0.08 cores and the broker's from 0.81 to 0.53, on the
// two cores ingest shares (deploy/bench/results/2026-12-07-s16-commit-interval). Kafka Streams
// commits exactly-once work every 100 ms the same way.
const (
	commitInterval = 100 * time.Millisecond
	commitBytes    = 1 << 20
)

// newSession builds the transactional group client. The transactional id and the static
// instance id stay the same across sessions: the new producer's epoch fences the old one, and
// the group hands the member its partitions back without a rebalance of the others.
func (p *Processor) newSession() (*kgo.GroupTransactSession, error) {
	p.stopErr.Store(nil) // an error of the previous session's callbacks is handled
	return kafka.NewTransactSession(p.cfg, p.log,
		kgo.TransactionalID(transactionalID(p.cfg, p.instance)),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(p.cfg.ProcessorGroup()),
		// Static membership: a restarted instance takes its predecessor's place and partitions
		// at once, without a rebalance of the whole group.
		kgo.InstanceID(p.instance),
		kgo.SessionTimeout(sessionTimeout),
		kgo.ConsumeTopics(p.cfg.Topic(config.TopicRaw)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMinBytes(commitBytes),
		kgo.FetchMaxWait(commitInterval),
		kgo.RequireStableFetchOffsets(),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onRevoked),
	)
}

// consume polls and processes batches until ctx ends or the session fails. committed says a
// transaction committed in this session.
func (p *Processor) consume(ctx context.Context, sess *kgo.GroupTransactSession) (committed bool, err error) {
	for {
		fetches := p.poll(ctx, sess)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return committed, nil
		}
		if err := p.stopErr.Load(); err != nil {
			return committed, *err
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) { // the hold's tick (poll)
				p.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", part), zap.Error(err))
			}
		})
		if fetches.NumRecords() == 0 && !p.holdsDue() {
			continue
		}
		ok, err := p.processBatch(ctx, sess, fetches)
		if err != nil {
			return committed, err
		}
		committed = committed || ok
	}
}

// poll fetches the next batch. While the policy holds events it waits at most holdScanEvery,
// so the window's timer releases held events on a partition that receives nothing more.
func (p *Processor) poll(ctx context.Context, sess *kgo.GroupTransactSession) kgo.Fetches {
	if !p.holding() {
		return sess.PollRecords(ctx, maxPollRecords)
	}
	tick, cancel := context.WithTimeout(ctx, holdScanEvery)
	defer cancel()
	return sess.PollRecords(tick, maxPollRecords)
}

// endSession aborts what the session left open and closes it, which leaves the group (a static
// member only stops heartbeating) and revokes every partition: their stores close, and the next
// session's assignment restores them from the changelog offsets they hold.
func (p *Processor) endSession(sess *kgo.GroupTransactSession) {
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	if _, err := sess.End(ctx, kgo.TryAbort); err != nil {
		p.log.Debug("aborting the failed session's transaction", zap.Error(err))
	}
	sess.Close()
	if err := p.state.closeAll(); err != nil {
		p.log.Warn("closing state stores", zap.Error(err))
	}
}

// fenced reports whether err says the producer's epoch is no longer the transactional id's: its
// transaction cannot commit, nor be aborted by it; only a new session's producer can.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.UnknownProducerID)
}

// recoveryReason is the failure's label for the recoveries metric and the log: a small fixed set.
func recoveryReason(err error) string {
	switch {
	case fenced(err):
		return "fenced"
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.GroupAuthorizationFailed), errors.Is(err, kerr.TopicAuthorizationFailed):
		return "authorization"
	case errors.Is(err, errRestore):
		return "restore"
	case errors.Is(err, errState):
		return "state"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transaction"
}

// errRestore and errState mark the failures that are not the transaction's: a partition's store
// that could not be restored on assignment, or read or written while processing.
var (
	errRestore = errors.New("restore consent state")
	errState   = errors.New("state store")
)
