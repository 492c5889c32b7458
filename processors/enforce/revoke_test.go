package enforce

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/schemas"
)

// storeProcessor is a processor over the demo policy with partition 0's store open and no
// lookahead follower.
func storeProcessor(t *testing.T) *Processor {
	pol, err := policy.Load(filepath.Join("..", "..", "deploy", "demo", "policy.yaml"))
	require.NoError(t, err)
	cfg := &config.Config{Policy: pol}
	cfg.Kafka.TopicPrefix = "t."
	cfg.Dedup.Window = 7 * 24 * time.Hour
	p := newProcessor(cfg, zap.NewNop(), newStateStore(t.TempDir(), cfg.Dedup.Window))
	p.ahead = &lookahead{book: p.state.book, pending: map[int32]map[string][]restriction{}}
	p.tally.reset()
	_, err = p.state.open(0, false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.state.closeAll() })
	return p
}

// sampleRecords are n sample events as raw records of partition 0.
func sampleRecords(t *testing.T, n int) []*kgo.Record {
	var recs []*kgo.Record
	for i, s := range sample.Events(7, n, n, time.Now()) {
		body, err := json.Marshal(s)
		require.NoError(t, err)
		ev, err := ingest.DecodeEvent(body, time.Now())
		require.NoError(t, err)
		v, err := schemas.Events.Encode(ev)
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Topic: "t.events.raw", Offset: int64(i), Key: []byte(ev.UserKey()), Value: v})
	}
	return recs
}

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
	p := storeProcessor(t)
	recs := sampleRecords(t, 3)
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
	p := storeProcessor(t)
	recs := sampleRecords(t, 1)
	batch := p.state.begin()
	require.False(t, isDuplicate(t, p, recs[0], batch))
	held := p.state.store(0)
	require.NoError(t, p.state.closePartitions([]int32{0}))
	db, err := p.state.open(0, false)
	require.NoError(t, err)
	require.Same(t, held, db, "the held store is taken back")
	p.release(batch)
	_, _, err = db.Consent("nobody")
	require.NoError(t, err, "still open: the partition is owned again")
}
