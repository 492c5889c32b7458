package statestore

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Pebble reserves each memtable's size in the block cache. With the partitions of a processor
// open at once and their memtables grown to full size, each store must still keep the filter and
// index blocks its consent lookups read, rather than read them from disk on every event.
func TestCacheHoldsBlocksBesideFullMemtables(t *testing.T) {
	const parts, users = 4, 80_000 // enough writes to grow each memtable to memTableSize
	stores := make([]*Store, parts)
	state := make([]byte, 100)
	for p := range stores {
		s, err := Open(t.TempDir(), 7*24*time.Hour)
		require.NoError(t, err)
		defer s.Close()
		stores[p] = s
		b := s.NewBatch()
		for i := range users {
			b.PutConsent(fmt.Sprintf("user-%d-%d", p, i), state)
			if b.Len() >= 10_000 {
				require.NoError(t, b.Commit())
				b = s.NewBatch()
			}
		}
		require.NoError(t, b.Commit())
		require.NoError(t, s.db.Flush())
	}
	for p, s := range stores {
		before := s.db.Metrics().BlockCache
		for i := range 200 {
			_, ok, err := s.Consent(fmt.Sprintf("user-%d-%d-new", p, i))
			require.NoError(t, err)
			require.False(t, ok)
		}
		after := s.db.Metrics().BlockCache
		require.Greater(t, after.Hits-before.Hits, after.Misses-before.Misses, "block reads served by the cache")
	}
}
