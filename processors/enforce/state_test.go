package enforce

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

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
	store := newStateStore()
	withdraw := &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}}

	aborted := store.begin()
	aborted.apply(0, withdraw)
	u, ok := aborted.lookup(0, "u")
	require.True(t, ok, "later events of the same batch see the withdrawal")
	require.NotZero(t, u.refused())
	require.Nil(t, store.state(0, "u"), "nothing reaches the store before commit")

	committed := store.begin()
	committed.apply(0, withdraw)
	store.commit(committed)
	require.Equal(t, false, store.state(0, "u").Consent["marketing"])
}

func TestDropPartitionsForgetsOnlyTheirUsers(t *testing.T) {
	store := newStateStore()
	store.put(0, "a", userState{})
	store.put(1, "b", userState{})
	store.dropPartitions([]int32{0})
	_, ok := store.lookup(0, "a")
	require.False(t, ok)
	_, ok = store.lookup(1, "b")
	require.True(t, ok)
	require.Equal(t, 1, store.len())
}

func TestDecisionStatesAreShared(t *testing.T) {
	book := newCodebook()
	s := book.merge(userState{}, &schemas.ConsentUpdate{Consent: map[string]bool{"marketing": false}})
	require.Same(t, book.decisionState(s.refused(), false), book.decisionState(s.refused(), false))
	require.Equal(t, 32, int(unsafe.Sizeof(userState{})), "memory per user is this plus the key and map slot")
}

// BenchmarkStoreMemory reports the heap bytes the store takes per user (see the issue-3 note).
func BenchmarkStoreMemory(b *testing.B) {
	const users = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		store := newStateStore()
		u := &schemas.ConsentUpdate{Consent: map[string]bool{"necessary": true, "analytics": true, "marketing": false}, NoticeVersion: "v3", TimestampMs: 1}
		for i := range users {
			u.UserKey = fmt.Sprintf("user-%08d", i)
			store.apply(int32(i%6), u)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "B/user")
		runtime.KeepAlive(store)
	}
}
