package enforce

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// fencedRun runs processor a on an in-process Kafka (kfake) over a stream of events, lets fence
// break its producer once it has committed, and checks that a recovered in-process (Run goes
// on, and one of counted goes up: the recoveries with the reason, or the aborted transactions
// where franz-go mends the producer itself) and that every event was decided exactly once. Each
// run has its cluster, topics and metrics (startMember) to itself: the runs go in parallel.
func fencedRun(t *testing.T, counted func(*metrics) []prometheus.Counter, fence func(c *kfake.Cluster, cfg *config.Config)) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	defer c.Close()
	fencedOn(t, strings.Join(c.ListenAddrs(), ","), counted, func(cfg *config.Config) { fence(c, cfg) })
}

// fencedOn is fencedRun on the brokers given.
func fencedOn(t *testing.T, brokers string, counted func(*metrics) []prometheus.Counter, fence func(cfg *config.Config)) {
	cfg := groupConfig(t, brokers, 3)
	f := newFeed(t, cfg)
	f.write(t, 300, 50)
	a := startMember(t, cfg, "a")
	sum := func() (n float64) {
		for _, c := range counted(a.p.metrics) {
			n += testutil.ToFloat64(c)
		}
		return n
	}
	before := sum()
	require.Eventually(t, func() bool {
		committed, _ := consumed(f.cl, cfg)
		return committed > 0 || a.failed() != nil
	}, time.Minute, 20*time.Millisecond, "a commits its first batch")
	require.NoError(t, a.failed())
	fence(cfg)
	for range 5 {
		f.write(t, 300, 50)
	}
	f.flush(t)
	require.Eventually(t, func() bool {
		committed, end := consumed(f.cl, cfg)
		return committed >= 0 && committed == end && sum() > before || a.failed() != nil
	}, 2*time.Minute, 50*time.Millisecond, "a recovers and finishes the stream")
	require.NoError(t, a.failed(), "the processor recovers in-process, it does not exit")
	require.NoError(t, a.stop(t))
	checkExactlyOnce(t, cfg, f)
	t.Logf("%d events, %d resends, counted %v", len(f.ids), f.resends, sum()-before)
}

// fencedRecoveries are the recoveries of fenced producers.
func fencedRecoveries(m *metrics) []prometheus.Counter {
	return []prometheus.Counter{m.recoveries.WithLabelValues("fenced")}
}

// TestFencedOnEndTxnRecovers: the commit of a transaction answered PRODUCER_FENCED (the
// coordinator gave the transactional id a newer epoch, as after a broker failover).
func TestFencedOnEndTxnRecovers(t *testing.T) {
	t.Parallel()
	fencedRun(t, fencedRecoveries, func(c *kfake.Cluster, _ *config.Config) {
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ProducerFenced})
	})
}

// TestInvalidEpochOnEndTxnRecovers: the commit answered INVALID_PRODUCER_EPOCH (the coordinator
// aborted the transaction on timeout while a broker failed over, and bumped the epoch: the
// cluster run's case).
func TestInvalidEpochOnEndTxnRecovers(t *testing.T) {
	t.Parallel()
	fencedRun(t, fencedRecoveries, func(c *kfake.Cluster, _ *config.Config) {
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.InvalidProducerEpoch})
	})
}

// TestInvalidEpochOnProduceRecovers: produces of the decisions answered INVALID_PRODUCER_EPOCH.
// franz-go mends that one in the same client when it can (it aborts and bumps the epoch: the
// batch's transaction aborts), else the session is replaced; either way the batch is decided
// again, once.
func TestInvalidEpochOnProduceRecovers(t *testing.T) {
	t.Parallel()
	fencedRun(t, func(m *metrics) []prometheus.Counter { return append(fencedRecoveries(m), m.aborted) }, func(c *kfake.Cluster, cfg *config.Config) {
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: cfg.Topic(config.TopicDecisions),
			Err: kerr.InvalidProducerEpoch, Count: 3})
	})
}

// TestFencedBySecondProducerRecovers: another client starts with the processor's transactional
// id (a new instance on the same name), which fences the processor's producer on the broker.
// The processor's new client fences that one in turn and goes on.
func TestFencedBySecondProducerRecovers(t *testing.T) {
	t.Parallel()
	fencedRun(t, fencedRecoveries, func(c *kfake.Cluster, cfg *config.Config) {
		fenceWithSecondProducer(t, cfg)
	})
}

// TestFencedBySecondProducerOnTheBroker is TestFencedBySecondProducerRecovers on the real broker.
func TestFencedBySecondProducerOnTheBroker(t *testing.T) {
	t.Parallel()
	fencedOn(t, testBroker(t), fencedRecoveries, func(cfg *config.Config) {
		dropTopicsAfter(t, cfg)
		fenceWithSecondProducer(t, cfg)
	})
}

// fenceWithSecondProducer starts a transaction of another client with processor a's
// transactional id: its InitProducerID gives the id a new epoch, which fences a's producer. Its
// own produce and commit may fail in turn (a's next client fences it back), so only the fencing
// is required.
func fenceWithSecondProducer(t *testing.T, cfg *config.Config) {
	topic := cfg.Topic("fencer")
	other, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.TransactionalID(transactionalID(cfg, "a")), kgo.DefaultProduceTopic(topic))
	require.NoError(t, err)
	defer other.Close()
	_, err = kadm.NewClient(other).CreateTopic(context.Background(), 1, 1, nil, topic)
	require.NoError(t, err)
	require.NoError(t, other.BeginTransaction())
	if err := other.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Logf("the fencer's produce: %v", err)
	}
	if err := other.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Logf("the fencer's commit: %v", err)
	}
}

// TestRecoveryGivesUpWhenItKeepsFailing: when every new session fails too (here the broker
// refuses the transactional id), Run returns the error after maxRecoveries attempts, for the
// supervisor, instead of retrying forever in silence.
//
// Not parallel: it shortens the package's recoverPolicy, which the other runs read.
func TestRecoveryGivesUpWhenItKeepsFailing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	defer c.Close()
	cfg := groupConfig(t, strings.Join(c.ListenAddrs(), ","), 1)
	f := newFeed(t, cfg)
	f.write(t, 50, 10)
	saved := recoverPolicy
	recoverPolicy.Initial, recoverPolicy.Max = time.Millisecond, 10*time.Millisecond
	defer func() { recoverPolicy = saved }()
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.TransactionalIDAuthorizationFailed, Count: -1})

	a := startMember(t, cfg, "a")
	recovered := a.p.metrics.recoveries.WithLabelValues("authorization")
	var runErr error
	require.Eventually(t, func() bool { runErr = a.failed(); return runErr != nil }, 2*time.Minute, 20*time.Millisecond)
	require.ErrorIs(t, runErr, kerr.TransactionalIDAuthorizationFailed)
	require.ErrorContains(t, runErr, fmt.Sprintf("failed %d times in a row", maxRecoveries+1))
	require.Equal(t, float64(maxRecoveries), testutil.ToFloat64(recovered), "each recovery counted once")
}

// TestRecoveryReasons: the recoveries metric's reason label is one of a small fixed set.
func TestRecoveryReasons(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("end transaction: %w", kerr.ProducerFenced):                     "fenced",
		fmt.Errorf("begin transaction: %w", kerr.InvalidProducerEpoch):             "fenced",
		fmt.Errorf("end transaction: %w", kerr.TransactionalIDAuthorizationFailed): "authorization",
		fmt.Errorf("%w: %w", errRestore, errors.New("list offsets")):               "restore",
		fmt.Errorf("%w: read: %w", errState, errors.New("disk")):                   "state",
		fmt.Errorf("end transaction: %w", context.DeadlineExceeded):                "timeout",
		errors.New("something else"):                                               "transaction",
	} {
		require.Equal(t, want, recoveryReason(err), "%v", err)
	}
}
