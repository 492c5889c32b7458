package enforce

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/schemas"
)

// isDuplicate says whether handling r in batch wrote a duplicates record (a resend absorbed).
func isDuplicate(t *testing.T, p *Processor, r *kgo.Record, batch *stagedState) bool {
	outs, err := p.handle(r, batch)
	require.NoError(t, err)
	for _, o := range outs {
		if o.Topic == p.cfg.Topic(config.TopicDuplicates) {
			return true
		}
	}
	return false
}

// TestRevokedStoreStaysOpenForTheBatch: a partition revoked in the middle of a batch (the revoke
// callback runs on franz-go's group goroutine) keeps its store for that batch: the batch goes on
// reading what the store remembers (a resend of an event of an earlier transaction is still one),
// its commit leaves the store alone, and the store closes when the batch ends. Before, the revocation
// closed the store at once: the batch read the partition as empty (the resend decided again)
// or, holding the store already, panicked in pebble (a read or commit after Close).
func TestRevokedStoreStaysOpenForTheBatch(t *testing.T) {
	p := newTestProcessor(t, 1)
	p.tally.reset()
	recs, _ := rawEvents(t, 3)
	first := p.state.begin()
	require.False(t, isDuplicate(t, p, recs[0], first))
	require.NoError(t, p.state.commit(first))
	p.release(first)

	batch := p.state.begin()
	require.False(t, isDuplicate(t, p, recs[1], batch))
	db := p.state.store(0)
	require.NoError(t, p.state.closePartitions([]int32{0}), "the revoke callback, mid-batch")
	require.Nil(t, p.state.store(0), "the partition is no longer owned")
	require.True(t, isDuplicate(t, p, recs[0], batch), "the batch still reads the revoked partition's store")
	require.False(t, isDuplicate(t, p, recs[2], batch))
	require.NoError(t, p.state.commit(batch), "committing a batch that read a revoked store is safe")
	_, ok, err := db.Consent("nobody")
	require.NoError(t, err)
	require.False(t, ok, "open until the batch ends")
	p.release(batch)
	require.Panics(t, func() { _, _, _ = db.Consent("nobody") }, "closed once the batch ended")
}

// TestReassignedStoreIsTakenBack: a partition revoked and assigned again while a batch still
// holds its store gets that same open store back (a second pebble could not lock its folder),
// and the batch's end does not close it.
func TestReassignedStoreIsTakenBack(t *testing.T) {
	p := newTestProcessor(t, 1)
	p.tally.reset()
	recs, _ := rawEvents(t, 1)
	batch := p.state.begin()
	require.False(t, isDuplicate(t, p, recs[0], batch))
	held := p.state.store(0)
	require.NoError(t, p.state.closePartitions([]int32{0}))
	db, err := p.state.open(0)
	require.NoError(t, err)
	require.Same(t, held, db, "the held store is taken back")
	p.release(batch)
	_, _, err = db.Consent("nobody")
	require.NoError(t, err, "still open: the partition is owned again")
}

// TestCommittedBatchLeavesAGivenUpStore: a batch whose transaction committed just before its
// partition was revoked and given back (franz-go runs the callbacks beside the batch) does not
// write into the store the restore brought up to date meanwhile: the changelog has its changes.
// Before, it wrote its older consent state over the restored one and moved the changelog
// offsets back, beside the restore's checkpoint of the same store.
func TestCommittedBatchLeavesAGivenUpStore(t *testing.T) {
	p := newTestProcessor(t, 1)
	p.tally.reset()
	recs, _ := rawEvents(t, 1)
	batch := p.state.begin()
	require.False(t, isDuplicate(t, p, recs[0], batch))
	_, err := batch.apply(0, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": true}, TimestampMs: 1})
	require.NoError(t, err)
	topic := p.cfg.Topic(config.TopicState)
	batch.produced(topic, 0, 7)

	require.NoError(t, p.state.closePartitions([]int32{0}), "revoked after End")
	db, err := p.state.open(0)
	require.NoError(t, err, "given back: the held store is taken back")
	restored := db.NewBatch() // the restore: the user's later refusal, from the changelog
	restored.PutConsent("u", schemas.ConsentUpdates.MustEncode(&schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}, TimestampMs: 2}))
	restored.SetOffset(topic, 9)
	require.NoError(t, restored.Commit())

	require.NoError(t, p.state.commit(batch))
	p.release(batch)
	require.False(t, marketing(t, db, "u"), "the restored refusal stands")
	off, _, err := db.Offset(topic)
	require.NoError(t, err)
	require.EqualValues(t, 9, off, "the restore's offset stands")

	next := p.state.begin() // the partition is owned again: the next batch commits as ever
	_, err = next.apply(0, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": true}, TimestampMs: 3})
	require.NoError(t, err)
	require.NoError(t, p.state.commit(next))
	p.release(next)
	require.True(t, marketing(t, db, "u"))
}

// marketing is the user's marketing choice as the store holds it.
func marketing(t *testing.T, db *statestore.Store, user string) bool {
	v, ok, err := db.Consent(user)
	require.NoError(t, err)
	require.True(t, ok)
	u, err := schemas.ConsentUpdates.Decode(v)
	require.NoError(t, err)
	return u.Consent["marketing"]
}

// consumedNow follows franz-go's group state: the partitions the session was assigned (and
// polled or had committed offsets for), not others.
func TestConsumedNow(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "raw"))
	require.NoError(t, err)
	defer c.Close()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("tx"),
		kgo.ConsumerGroup("g"), kgo.ConsumeTopics("raw"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer sess.Close()
	pr, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("raw"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer pr.Close()
	require.NoError(t, pr.ProduceSync(context.Background(), &kgo.Record{Partition: 0, Value: []byte("x")}, &kgo.Record{Partition: 1, Value: []byte("y")}).FirstErr())
	polled := map[int32]bool{}
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		sess.PollFetches(ctx).EachRecord(func(r *kgo.Record) { polled[r.Partition] = true })
		return len(polled) == 2
	}, 30*time.Second, 10*time.Millisecond)
	consumed := consumedNow(sess, "raw")
	require.True(t, consumed(0))
	require.True(t, consumed(1))
	require.False(t, consumed(2), "not a partition of the topic")
	require.False(t, consumedNow(sess, "other")(0), "not a topic the session reads")
}
