package enforce

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
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
// reading what the store remembers (a resend of an event of an earlier transaction is still one)
// and can commit into it, and the store closes when the batch ends. Before, the revocation
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
	require.NoError(t, p.state.commit(batch), "committing into the revoked store is safe")
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
