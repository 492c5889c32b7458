package enforce

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func TestMergeKeepsUnnamedPurposesAndErasureSticks(t *testing.T) {
	s := merge(nil, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"analytics": true, "marketing": true}, TimestampMs: 1}, 2)
	s = merge(s, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}, TimestampMs: 2, NoticeVersion: "v3"}, 2)
	require.Equal(t, map[string]bool{"analytics": true, "marketing": false}, s.Consent)
	require.Equal(t, "v3", s.NoticeVersion)
	s = merge(s, &schemas.ConsentUpdate{UserKey: "u", Erased: true, TimestampMs: 3}, 2)
	s = merge(s, &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": true}, TimestampMs: 4}, 2)
	require.True(t, s.Erased, "an erasure is never undone by a later consent")
	require.Equal(t, int64(4), s.UpdatedMs)
}

// A batch whose transaction aborts must leave no trace in the state it is retried against.
func TestStagedStateAppliesOnlyOnCommit(t *testing.T) {
	store := newStateStore()
	withdraw := &schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"marketing": false}}

	aborted := store.begin()
	aborted.apply(withdraw, 0)
	require.Equal(t, false, aborted.get("u").Consent["marketing"], "later events of the same batch see the withdrawal")
	require.Nil(t, store.lookup("u"), "nothing reaches the store before commit")

	committed := store.begin()
	committed.apply(withdraw, 0)
	store.commit(committed)
	require.Equal(t, false, store.lookup("u").Consent["marketing"])
}

func TestDropPartitionsForgetsOnlyTheirUsers(t *testing.T) {
	store := newStateStore()
	store.put("a", &userState{partition: 0})
	store.put("b", &userState{partition: 1})
	store.dropPartitions([]int32{0})
	require.Nil(t, store.lookup("a"))
	require.NotNil(t, store.lookup("b"))
	require.Equal(t, 1, store.len())
}
