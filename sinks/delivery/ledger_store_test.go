package delivery

import (
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
