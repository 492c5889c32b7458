package delivery

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/schemas"
)

// The ledger check is a point read until the store has bottom-level tables, then a prefix seek
// (so L6's bloom filters answer misses): either way only the event's own entry matches, never an
// id that is a prefix of a stored one or the other way round, nor the same id of another day.
func TestLedgerCheckMatchesWholeEntriesOnly(t *testing.T) {
	l := &ledgerStore{log: zap.NewNop()}
	db, err := openStore(t.TempDir(), &l.bottom)
	require.NoError(t, err)
	l.db = db
	defer db.Close()
	decided := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC).UnixMilli()
	l.remember([]schemas.LedgerEntry{{EventID: "e12", DecidedMs: decided, DeliveredMs: decided + 1, Attempt: 1}})
	check := func() {
		require.True(t, l.delivered(&schemas.FilteredEvent{EventID: "e12", DecidedMs: decided}))
		for _, ev := range []schemas.FilteredEvent{{EventID: "e1", DecidedMs: decided}, {EventID: "e123", DecidedMs: decided},
			{EventID: "e12", DecidedMs: decided + 24*3600*1000}} {
			require.False(t, l.delivered(&ev), "%s decided %d", ev.EventID, ev.DecidedMs)
		}
	}
	check()
	require.False(t, l.bottom.Load(), "nothing in L6 yet: point reads")
	require.NoError(t, db.Compact(t.Context(), []byte{0}, []byte{0xff}, true))
	require.True(t, l.bottom.Load(), "compacted into L6: prefix seeks")
	check()
}

// Reading the ledger topic back writes only the offset for the entries this store's process
// produced (remember stored them already), and the entry itself for another process's; either
// way the partition's next offset is stored once per fetch.
func TestLedgerReadBackSkipsOwnEntries(t *testing.T) {
	l := &ledgerStore{log: zap.NewNop(), writer: newWriterID()}
	db, err := openStore(t.TempDir(), &l.bottom)
	require.NoError(t, err)
	l.db = db
	defer db.Close()
	decided := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC).UnixMilli()
	own := l.entry(&schemas.LedgerEntry{EventID: "own", DecidedMs: decided, DeliveredMs: decided + 1, Attempt: 1})
	other := (&ledgerStore{writer: newWriterID()}).entry(&schemas.LedgerEntry{EventID: "other", DecidedMs: decided, DeliveredMs: decided + 1, Attempt: 1})
	own.Partition, own.Offset = 2, 7
	other.Partition, other.Offset = 2, 8
	l.apply(own)
	l.apply(other)
	l.commit()
	require.False(t, l.delivered(&schemas.FilteredEvent{EventID: "own", DecidedMs: decided}), "an own entry is not written again (remember wrote it)")
	require.True(t, l.delivered(&schemas.FilteredEvent{EventID: "other", DecidedMs: decided}), "another process's entry is stored")
	v, closer, err := db.Get(offsetKey(2))
	require.NoError(t, err)
	defer closer.Close()
	require.Equal(t, uint64(9), binary.BigEndian.Uint64(v), "the next offset after the fetch")
}

// The runner stops overlapping polls only while ledger entries wait for Kafka's acknowledgement
// longer than ledgerStall.
func TestLedgerWriterStalled(t *testing.T) {
	var w ledgerWriter
	require.False(t, w.stalled(), "nothing outstanding")
	w.unacked.Store(3)
	w.since.Store(time.Now().UnixNano())
	require.False(t, w.stalled(), "entries outstanding for a moment")
	w.since.Store(time.Now().Add(-2 * ledgerStall).UnixNano())
	require.True(t, w.stalled(), "entries outstanding for longer than ledgerStall")
	w.unacked.Store(0)
	require.False(t, w.stalled(), "all acknowledged")
}
