package enforce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// restoreConfig is a deployment of its own (topic prefix, state folder) on the test broker.
func restoreConfig(t *testing.T) *config.Config {
	brokers := testenv.Kafka(t) // TOLLGATE_TEST_KAFKA, or a container; skips under -short
	dir := t.TempDir()
	yaml := fmt.Sprintf("kafka:\n  brokers: [%s]\n  topic_prefix: restore%d.\n  partitions: 2\ningest:\n  write_keys: [k]\n",
		brokers, time.Now().UnixNano())
	cfg, err := config.Parse(filepath.Join(dir, "config.yaml"), []byte(yaml), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Policy = &policy.Policy{} // no destinations: only the processor's own topics
	return cfg
}

// restoreTopics is restoreConfig with the deployment's topics created, and a client (closed at
// the test's end).
func restoreTopics(t *testing.T) (*config.Config, *kgo.Client) {
	cfg := restoreConfig(t)
	cl, err := kafka.NewClient(cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, kafka.EnsureTopics(context.Background(), cfg, cl))
	return cfg, cl
}

// produceChangelog writes consent states and remembered ids as a processor's transactions do
// (keyed by user, so a user's records share a partition).
func produceChangelog(t *testing.T, cl *kgo.Client, cfg *config.Config, from, to int, now int64) {
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		user := fmt.Sprintf("u%d", i)
		c, err := schemas.ConsentUpdates.Encode(&schemas.ConsentUpdate{UserKey: user, Consent: map[string]bool{"marketing": i%2 == 0}, TimestampMs: now})
		require.NoError(t, err)
		d, err := schemas.Duplicates.Encode(&schemas.Duplicate{EventID: fmt.Sprint("e", i), UserKey: user, FirstSeenMs: now, LastSeenMs: now})
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Topic: cfg.Topic(config.TopicState), Key: []byte(user), Value: c},
			&kgo.Record{Topic: cfg.Topic(config.TopicDedupIDs), Key: []byte(user), Value: d})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// A cold start reads both changelogs whole; a restart on the same folder reads only what was
// added since (the offsets are stored with the data); a deleted folder is rebuilt. Each time the
// consent and the remembered ids are all there.
func TestRestoreReadsOnlyTheChangelogTail(t *testing.T) {
	cfg, cl := restoreTopics(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	produceChangelog(t, cl, cfg, 0, 100, now)
	parts := []int32{0, 1}

	restore := func() (*Processor, int) {
		p := New(cfg, zap.NewNop())
		n, err := p.restore(ctx, cl, parts)
		require.NoError(t, err)
		return p, n
	}
	check := func(p *Processor, users int) {
		found := 0
		for i := range users {
			user := fmt.Sprintf("u%d", i)
			for _, part := range parts {
				st, err := p.state.state(part, user)
				require.NoError(t, err)
				_, seen, err := p.state.seen(part, statestore.IDOf(user, fmt.Sprint("e", i)), now)
				require.NoError(t, err)
				if st != nil {
					found++
					_, refused := st.Consent["marketing"]
					require.Equal(t, i%2 != 0, refused, "%s's refusal is restored", user)
					require.True(t, seen, "%s's id is remembered on the partition of their consent", user)
				}
			}
		}
		require.Equal(t, users, found)
	}

	p, n := restore()
	require.Equal(t, 200, n, "cold: both changelogs whole")
	check(p, 100)
	require.NoError(t, p.state.closeAll())

	produceChangelog(t, cl, cfg, 100, 110, now)
	p, n = restore()
	require.Equal(t, 20, n, "warm: only the records added since")
	check(p, 110)
	require.NoError(t, p.state.closeAll())

	require.NoError(t, os.RemoveAll(cfg.StatePath()))
	p, n = restore()
	require.Equal(t, 220, n, "cold again: the deleted folder is rebuilt")
	check(p, 110)
	require.NoError(t, p.state.closeAll())
	require.True(t, strings.HasPrefix(p.state.dir, filepath.Dir(cfg.File)), "the state lives next to the config by default")
}

// The stores keep no write-ahead log: a crash (kill -9) loses what was applied since the last
// flush. A committed transaction's ids are in the dedup changelog, so the restore after the
// crash reads them again from the offset the store had flushed, and none is forgotten. The
// crash is a crash clone of an in-memory file system: exactly what was synced survives.
func TestRestoreAfterCrashReadsUnflushedIDsFromTheChangelog(t *testing.T) {
	cfg, cl := restoreTopics(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	produceChangelog(t, cl, cfg, 0, 10, now) // per-id records, as written before the upgrade
	parts := []int32{0, 1}
	fs := vfs.NewCrashableMem()
	start := func(fs vfs.FS) *Processor {
		p := New(cfg, zap.NewNop())
		p.state.options = []statestore.Option{statestore.WithFS(fs)}
		return p
	}
	p := start(fs)
	n, err := p.restore(ctx, cl, parts)
	require.NoError(t, err)
	require.Equal(t, 20, n)

	// A committed transaction: ids 10..19 sighted, its changelog records produced (one per
	// partition), then applied to the stores, which do not flush.
	partOf := func(user string) int32 { return partOfUser(user, len(parts)) }
	batch := p.state.begin()
	for i := 10; i < 20; i++ {
		user := fmt.Sprintf("u%d", i)
		_, dup, err := batch.sighting(partOf(user), user, fmt.Sprint("e", i), now)
		require.NoError(t, err)
		require.False(t, dup)
	}
	recs := batch.changelog(cfg.Topic(config.TopicDedupIDs))
	require.Len(t, recs, len(parts), "one record per partition")
	for _, r := range cl.ProduceSync(ctx, recs...) {
		require.NoError(t, r.Err)
		require.Equal(t, r.Record.Partition, partOf(string(r.Record.Key)))
		batch.produced(r.Record.Topic, r.Record.Partition, r.Record.Offset)
	}
	require.NoError(t, p.state.commit(batch))
	seen := func(p *Processor, i int) bool {
		user := fmt.Sprintf("u%d", i)
		_, ok, err := p.state.seen(partOf(user), statestore.IDOf(user, fmt.Sprint("e", i)), now)
		require.NoError(t, err)
		return ok
	}
	for i := range 20 {
		require.True(t, seen(p, i), i)
	}

	// kill -9: the crash clone holds what was flushed, the restore's checkpoint.
	lost := start(fs.CrashClone(vfs.CrashCloneCfg{}))
	for _, part := range parts {
		_, err := lost.state.open(part)
		require.NoError(t, err)
	}
	for i := 10; i < 20; i++ {
		require.False(t, seen(lost, i), "the unflushed id %d is not in the crashed store", i)
	}
	require.NoError(t, lost.state.closeAll())

	p2 := start(fs.CrashClone(vfs.CrashCloneCfg{}))
	n, err = p2.restore(ctx, cl, parts)
	require.NoError(t, err)
	require.Equal(t, len(parts), n, "the tail: the transaction's two dedup records")
	for i := range 20 {
		require.True(t, seen(p2, i), "id %d is remembered after the crash", i)
	}
	require.NoError(t, p2.state.closeAll())
	require.NoError(t, p.state.closeAll())
}

// A partition's previous owner may still be ending a transaction when the partition is assigned
// (franz-go commits one whose offsets went out even as a rebalance begins; a killed owner's stays
// open until the broker aborts it), and the new owner's consumer resumes after that
// transaction's events once it ends. The restore waits for it: a committed transaction's
// refusal is in the restored store, an aborted one's is not.
func TestRestoreWaitsForThePreviousOwnersOpenTransaction(t *testing.T) {
	cfg, cl := restoreTopics(t)
	ctx := context.Background()
	produceChangelog(t, cl, cfg, 0, 10, time.Now().UnixMilli()) // committed before: not waited for
	parts := []int32{0, 1}

	for _, commit := range []bool{true, false} {
		user := fmt.Sprintf("late-%v", commit)
		owner, err := kafka.NewClient(cfg, zap.NewNop(), kgo.TransactionalID(cfg.Topic("previous-owner")), kgo.TransactionTimeout(time.Minute))
		require.NoError(t, err)
		require.NoError(t, owner.BeginTransaction())
		v, err := schemas.ConsentUpdates.Encode(&schemas.ConsentUpdate{UserKey: user, Consent: map[string]bool{"marketing": false}})
		require.NoError(t, err)
		res := owner.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topic(config.TopicState), Key: []byte(user), Value: v})
		require.NoError(t, res.FirstErr())
		part := res[0].Record.Partition

		p := New(cfg, zap.NewNop())
		p.metrics = newMetrics()
		p.state.dir = t.TempDir()
		done := make(chan error, 1)
		go func() {
			_, err := p.restore(ctx, cl, parts)
			done <- err
		}()
		require.Eventually(t, func() bool { return testutil.ToFloat64(p.metrics.settleWaits) == 1 }, 30*time.Second, 20*time.Millisecond,
			"the restore must notice the open transaction (commit=%v)", commit)
		require.NoError(t, owner.EndTransaction(ctx, kgo.TransactionEndTry(commit)))
		owner.Close()
		require.NoError(t, <-done)

		st, err := p.state.state(part, user)
		require.NoError(t, err)
		if commit {
			require.NotNil(t, st, "the committed transaction's consent is restored")
			require.Contains(t, st.Consent, "marketing", "and refuses marketing")
		} else {
			require.Nil(t, st, "the aborted transaction's consent is not")
		}
		for i := range 10 { // what was committed before is restored either way
			st, err := p.state.state(partOfUser(fmt.Sprintf("u%d", i), len(parts)), fmt.Sprintf("u%d", i))
			require.NoError(t, err)
			require.NotNil(t, st)
		}
		require.NoError(t, p.state.closeAll())
	}
}

// partOfUser is the partition of a user's records in every changelog: the producer's key
// partitioner's (the topic plays no part in it for keyed records).
func partOfUser(user string, parts int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte(user)}, parts))
}
