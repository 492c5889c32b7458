package pebbledb

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
)

// Bottom says whether a lookup may have a bottom level to skip: false on a new database, true
// once a compaction wrote tables there, and true at once when a database that has them reopens.
func TestBottomIsSetByCompactionAndAtOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := func(b *atomic.Bool) Config {
		return Config{MemTableSize: 1 << 20, BlockCacheSize: 1 << 20, Bottom: b}
	}
	var bottom atomic.Bool
	db, err := Open(dir, cfg(&bottom))
	require.NoError(t, err)
	for i := range 1000 {
		require.NoError(t, db.Set(fmt.Appendf(nil, "k%04d", i), []byte("v"), pebble.NoSync))
	}
	require.False(t, bottom.Load(), "nothing is at the bottom yet")
	require.NoError(t, db.Compact(t.Context(), []byte("k"), []byte("l"), false))
	require.True(t, bottom.Load(), "the compaction wrote the bottom level")
	require.NoError(t, db.Close())

	var reopened atomic.Bool
	db, err = Open(dir, cfg(&reopened))
	require.NoError(t, err)
	defer db.Close()
	require.True(t, reopened.Load(), "known at open")
	v, closer, err := db.Get([]byte("k0999"))
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	require.NoError(t, closer.Close())
}
