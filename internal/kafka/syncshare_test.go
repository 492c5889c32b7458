package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSharedSyncJoinsARecentCatchUp: callers arriving while a catch-up that started less than
// reuse ago is in flight wait for it instead of starting their own; once it is older, a caller
// starts a new one.
func TestSharedSyncJoinsARecentCatchUp(t *testing.T) {
	var s sharedSync
	var runs atomic.Int32
	release := make(chan struct{})
	slow := func() error { runs.Add(1); <-release; return nil }
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	wg.Go(func() { require.NoError(t, s.do(context.Background(), time.Second, now, slow)) })
	require.Eventually(t, func() bool { return runs.Load() == 1 }, 5*time.Second, time.Millisecond)
	for range 10 {
		wg.Go(func() {
			require.NoError(t, s.do(context.Background(), time.Second, now.Add(500*time.Millisecond), slow))
		})
	}
	require.Eventually(t, func() bool { return s.waiting.Load() == 10 }, 5*time.Second, time.Millisecond)
	late := make(chan struct{})
	go func() {
		defer close(late)
		require.NoError(t, s.do(context.Background(), time.Second, now.Add(2*time.Second), func() error { runs.Add(1); return nil }))
	}()
	<-late // a caller past reuse does not wait for the one in flight
	require.Equal(t, int32(2), runs.Load())
	close(release)
	wg.Wait()
	require.Equal(t, int32(2), runs.Load(), "callers within reuse joined the catch-up in flight")
}
