package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// covers: a span is the owner's only when every offset in it was added; adjacent offsets merge,
// and what lies below the position asked about is forgotten.
func TestOwnWritesCovers(t *testing.T) {
	var o OwnWrites
	for _, off := range []int64{5, 6, 7, 9} {
		o.Add(0, off)
	}
	require.Len(t, o.ranges[0], 2, "5-7 merged, 9 alone")
	require.True(t, o.covers(0, 5, 8))
	require.True(t, o.covers(0, 6, 7))
	require.False(t, o.covers(0, 4, 8), "offset 4 is another writer's")
	require.False(t, o.covers(0, 5, 10), "offset 8 is another writer's")
	require.True(t, o.covers(0, 9, 10))
	o.forget(0, 8)
	require.Len(t, o.ranges[0], 1, "5-7 is read back: forgotten")
	require.True(t, o.covers(0, 9, 10))
	require.False(t, o.covers(1, 0, 1), "nothing of partition 1 is the owner's")
	require.True(t, o.covers(1, 3, 3), "an empty span")
}

// SyncOthers waits for the records of other writers only: the owner's own (OwnWrites) it has
// applied already. The follower is paused, so it reads nothing: SyncOthers returns on the owner's
// unread records, and waits for another writer's until the follower resumes.
func TestSyncOthersSkipsTheOwnersRecords(t *testing.T) {
	cfg := testKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce, f, seen := onePartition(ctx, t, cfg, "follower-own")
	var own OwnWrites
	f.Own(&own)
	produce("other-0", "other-1") // one record per request: offsets 0, 1, … in order
	require.NoError(t, f.Start(ctx, func(context.Context, *kgo.Client) (map[int32]int64, error) {
		return map[int32]int64{0: 0}, nil
	}))
	require.NoError(t, f.Sync(ctx, 0))

	f.Pause()
	produce("own-2", "own-3")
	own.Add(0, 2)
	own.Add(0, 3)
	require.NoError(t, f.SyncOthers(ctx, 0), "only the owner's records are unread")

	// The owner's write acknowledged but not yet noted when the catch-up lists the end: the
	// note, not a fetch (the follower is paused), ends the wait.
	produce("own-4")
	own.mu.Lock()
	own.added = nil // the catch-up's own wait channel, made after it listed the end, is awaited below
	own.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.SyncOthers(ctx, 0) }()
	require.Eventually(t, func() bool {
		own.mu.Lock()
		defer own.mu.Unlock()
		return own.added != nil
	}, 30*time.Second, time.Millisecond, "the catch-up lists the end, then waits")
	own.Add(0, 4)
	require.NoError(t, <-done)

	produce("other-5")
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	require.ErrorIs(t, f.SyncOthers(short, 0), context.DeadlineExceeded, "another writer's record is waited for")

	f.Resume()
	require.NoError(t, f.SyncOthers(ctx, 0))
	require.NoError(t, f.Sync(ctx, 0))
	require.Equal(t, []string{"other-0", "other-1", "own-2", "own-3", "own-4", "other-5"}, seen())
}
