package enforce

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func TestMergeKeepsUnnamedPurposesAndErasureSticks(t *testing.T) {
	book := newCodebook()
	s := book.merge(userState{}, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"analytics": true, "marketing": true}, TimestampMs: 1})
	s = book.merge(s, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}, TimestampMs: 2, NoticeVersion: "v3"})
	rec := book.record("u", s)
	require.Equal(t, map[string]bool{"analytics": true, "marketing": false}, rec.Consent)
	require.Equal(t, "v3", rec.NoticeVersion)
	require.Equal(t, map[string]bool{"marketing": false}, book.decisionState(s.refused(), s.erased).Consent,
		"the engine sees only refusals: a recorded true never grants by itself")

	s = book.merge(s, &schemas.ConsentUpdate{UserKey: "u", Erased: true, TimestampMs: 3})
	s = book.merge(s, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": true}, TimestampMs: 4})
	rec = book.record("u", s)
	require.True(t, rec.Erased, "an erasure is never undone by a later consent")
	require.Equal(t, int64(4), rec.TimestampMs)
	require.Equal(t, "v3", rec.NoticeVersion, "an update without a notice version keeps the last one")
}

// The changelog record of a state, merged into an empty state, gives the same state back: what
// a restore rebuilds is what the processor held.
func TestRecordRoundTrips(t *testing.T) {
	book := newCodebook()
	s := book.merge(userState{}, &schemas.ConsentUpdate{Consent: map[string]bool{"a": true, "b": false, "c": true}, TimestampMs: 9, NoticeVersion: "v1", Erased: true})
	other := newCodebook() // a restarted process numbers purposes in its own order
	other.bit("c")
	back := other.merge(userState{}, book.record("u", s))
	require.Equal(t, book.record("u", s), other.record("u", back))
}

// A batch whose transaction aborts must leave no trace in the state it is retried against.
func TestStagedStateAppliesOnlyOnCommit(t *testing.T) {
	store := newStateStore(t.TempDir(), time.Hour)
	defer store.closeAll()
	_, err := store.open(0)
	require.NoError(t, err)
	withdraw := &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}}

	aborted := store.begin()
	_, err = aborted.apply(0, withdraw)
	require.NoError(t, err)
	u, ok, err := aborted.lookup(0, "u")
	require.NoError(t, err)
	require.True(t, ok, "later events of the same batch see the withdrawal")
	require.NotZero(t, u.refused())
	_, dup, err := aborted.sighting(0, "u", "e1", 1000)
	require.NoError(t, err)
	require.False(t, dup)
	_, dup, err = aborted.sighting(0, "u", "e1", 2000)
	require.NoError(t, err)
	require.True(t, dup, "a resend inside the batch is a duplicate")
	st, err := store.state(0, "u")
	require.NoError(t, err)
	require.Nil(t, st, "nothing reaches the store before commit")

	committed := store.begin()
	_, err = committed.apply(0, withdraw)
	require.NoError(t, err)
	_, _, err = committed.sighting(0, "u", "e1", 1000)
	require.NoError(t, err)
	committed.produced("tg.consent.state", 0, 7)
	require.NoError(t, store.commit(committed))
	st, err = store.state(0, "u")
	require.NoError(t, err)
	require.Equal(t, false, st.Consent["marketing"])
	off, ok, err := store.store(0).Offset("tg.consent.state")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(7), off, "the changelog offset is stored with the data")
	seen, dup, err := store.begin().sighting(0, "u", "e1", 5000)
	require.NoError(t, err)
	require.True(t, dup, "the committed id is remembered")
	require.Equal(t, uint32(1), seen.Resends)
}

func TestClosedPartitionsHaveNoUsers(t *testing.T) {
	store := newStateStore(t.TempDir(), time.Hour)
	defer store.closeAll()
	for _, p := range []int32{0, 1} {
		require.NoError(t, store.apply(p, &schemas.ConsentUpdate{UserKey: fmt.Sprint("u", p), Consent: map[string]bool{"a": false}}))
	}
	require.NoError(t, store.closePartitions([]int32{0}))
	_, ok, err := store.lookup(0, "u0")
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = store.lookup(1, "u1")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = store.open(0) // reopened warm: the user is back from disk
	require.NoError(t, err)
	_, ok, err = store.lookup(0, "u0")
	require.NoError(t, err)
	require.True(t, ok)
}

func TestDecisionStatesAreShared(t *testing.T) {
	book := newCodebook()
	s := book.merge(userState{}, &schemas.ConsentUpdate{Consent: map[string]bool{"marketing": false}})
	require.Same(t, book.decisionState(s.refused(), false), book.decisionState(s.refused(), false))
}
