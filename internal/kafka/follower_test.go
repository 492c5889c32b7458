package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

func testKafka(t *testing.T) *config.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Kafka (make test-unit runs without services)")
	}
	addr := testenv.Kafka(t) // TOLLGATE_TEST_KAFKA, or a container
	return &config.Config{Kafka: config.Kafka{Brokers: []string{addr}}}
}

// The barrier: CatchUp returns only once every record committed before it was handed over,
// including on a partition that ends in a transaction marker (which takes an offset but is no
// record to hand over), and a partition that holds nothing yet does not hold it up.
func TestFollowerCatchUpSeesEverythingCommittedBefore(t *testing.T) {
	cfg := testKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("follower-test-%d", time.Now().UnixNano())
	admin, err := NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	defer admin.Close()
	_, err = kadm.NewClient(admin).CreateTopic(ctx, 3, 1, nil, topic)
	require.NoError(t, err)
	defer kadm.NewClient(admin).DeleteTopics(context.Background(), topic)

	var mu sync.Mutex
	seen := map[int32][]string{}
	f, err := NewFollower(cfg, zap.NewNop(), topic, func(r *kgo.Record) {
		mu.Lock()
		seen[r.Partition] = append(seen[r.Partition], string(r.Value))
		mu.Unlock()
	})
	require.NoError(t, err)
	defer f.Close()
	require.Eventually(t, func() bool { return f.Follow(ctx, map[int32]int64{0: -1, 1: -1, 2: -1}) == nil }, 30*time.Second, 200*time.Millisecond)
	go f.Run(ctx)

	tx, err := NewClient(cfg, zap.NewNop(), kgo.TransactionalID(topic), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer tx.Close()
	for round := range 3 {
		require.NoError(t, tx.BeginTransaction())
		for i := range 5 {
			tx.Produce(ctx, &kgo.Record{Partition: 0, Value: fmt.Appendf(nil, "%d-%d", round, i)}, nil)
		}
		tx.Produce(ctx, &kgo.Record{Partition: 1, Value: fmt.Appendf(nil, "%d", round)}, nil)
		require.NoError(t, tx.Flush(ctx))
		require.NoError(t, tx.EndTransaction(ctx, kgo.TryCommit))
		// The commit markers are written after EndTransaction returns; the barrier covers what
		// is committed when it is called, so wait until the broker lists the commit.
		require.Eventually(t, func() bool {
			ends, err := EndOffsets(ctx, admin, topic)
			return err == nil && ends[0] == int64(6*(round+1)) && ends[1] == int64(2*(round+1))
		}, 30*time.Second, 10*time.Millisecond)
		require.NoError(t, f.CatchUp(ctx, nil))
		mu.Lock()
		require.Len(t, seen[0], 5*(round+1), "partition 0 after round %d", round)
		require.Len(t, seen[1], round+1)
		require.Empty(t, seen[2])
		mu.Unlock()
	}
	next, ok := f.Position(0)
	require.True(t, ok)
	require.Equal(t, int64(18), next, "15 records and 3 commit markers")

	f.Forget([]int32{1})
	_, ok = f.Position(1)
	require.False(t, ok)
	require.NoError(t, f.CatchUp(ctx, []int32{1}), "a forgotten partition holds nothing up")

	f.Forget([]int32{0})
	require.NoError(t, f.Follow(ctx, map[int32]int64{0: 5}))
	require.NoError(t, f.CatchUp(ctx, []int32{0}))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen[0], 15+10, "started over at offset 5: the records from there are handed over again")
}

// A partition followed again without Forget starts over where Follow says: the client drops it
// and reads it again from there, so the position never stays behind what the client already
// read (make test saw the lookahead stuck short of a partition's end after a rebalance).
func TestFollowAgainStartsOver(t *testing.T) {
	cfg := testKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce, f, seen := onePartition(ctx, t, cfg, "follower-again")
	produce("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
	require.NoError(t, f.Follow(ctx, map[int32]int64{0: 0}))
	require.NoError(t, f.CatchUp(ctx, nil))
	require.NoError(t, f.Follow(ctx, map[int32]int64{0: 4})) // no Forget in between
	require.NoError(t, f.CatchUp(ctx, nil), "the position must reach the end again")
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "4", "5", "6", "7", "8", "9"}, seen())
}

// A paused follower's client fetches nothing for its topic until Resume; then it reads on from
// where it stopped: what was produced meanwhile is handed over, in order, and CatchUp returns.
func TestFollowerPauseAndResume(t *testing.T) {
	cfg := testKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce, f, seen := onePartition(ctx, t, cfg, "follower-pause")
	produce("0", "1", "2")
	require.NoError(t, f.Follow(ctx, map[int32]int64{0: 0}))
	require.NoError(t, f.CatchUp(ctx, nil))

	f.Pause()
	require.True(t, f.Paused())
	produce("3", "4", "5")
	f.Resume()
	require.False(t, f.Paused())
	require.NoError(t, f.CatchUp(ctx, nil), "resumed, it reaches the end")
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5"}, seen())
}

// onePartition creates a one-partition topic (deleted at the test's end) and returns a client
// that produces to its partition 0, and a follower of it that records the values it is handed,
// running until ctx ends.
func onePartition(ctx context.Context, t *testing.T, cfg *config.Config, prefix string) (produce func(values ...string), f *Follower, seen func() []string) {
	t.Helper()
	topic := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	admin, err := NewClient(cfg, zap.NewNop(), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.UnknownTopicRetries(-1)) // until ctx ends: a busy broker serves a new topic a moment after creating it
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	_, err = kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, topic)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = kadm.NewClient(admin).DeleteTopics(context.Background(), topic) })
	produce = func(values ...string) {
		for _, v := range values {
			require.NoError(t, admin.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte(v)}).FirstErr())
		}
	}

	var mu sync.Mutex
	var got []string
	f, err = NewFollower(cfg, zap.NewNop(), topic, func(r *kgo.Record) {
		mu.Lock()
		got = append(got, string(r.Value))
		mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(f.Close)
	go f.Run(ctx)
	return produce, f, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}
