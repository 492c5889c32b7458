package delivery

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Pebble reserves each memtable's size in the block cache. Once the ledger's memtable has grown
// to full size, the store must still keep the filter and index blocks its checks read, rather
// than read them from disk on every check.
func TestLedgerCacheHoldsBlocksBesideFullMemtable(t *testing.T) {
	t.Parallel()
	l := &ledgerStore{log: zap.NewNop()}
	db, err := openStore(t.TempDir(), &l.bottom)
	require.NoError(t, err)
	l.db = db
	defer db.Close()
	decided := time.Now().UnixMilli()
	for b := range 30 { // enough writes to grow the memtable to ledgerMemTableSize
		entries := make([]schemas.LedgerEntry, 5_000)
		for i := range entries {
			entries[i] = schemas.LedgerEntry{EventID: fmt.Sprintf("evt-%d-%d", b, i), DecidedMs: decided, DeliveredMs: decided, Attempt: 1}
		}
		l.remember(entries)
	}
	require.NoError(t, db.Flush())
	require.True(t, l.delivered(&schemas.FilteredEvent{EventID: "evt-7-7", DecidedMs: decided}))
	before := db.Metrics().BlockCache
	for i := range 200 { // events the filter lets through: the store is read
		require.True(t, l.delivered(&schemas.FilteredEvent{EventID: fmt.Sprintf("evt-%d-%d", i%30, i), DecidedMs: decided}))
	}
	after := db.Metrics().BlockCache
	require.Greater(t, after.Hits-before.Hits, after.Misses-before.Misses, "block reads served by the cache")
}
