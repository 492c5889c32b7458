package delivery

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
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

// Reading the journal back: an intent is kept open until its outcome; an outcome of this store's
// process writes no entry again (remember stored them), another process's enters the events it
// settled (delivered, or in doubt and not to be resent); an old per-event LedgerEntry still
// enters its event. The partition's next offset is stored once per fetch.
func TestLedgerReadBackOfTheJournal(t *testing.T) {
	l := &ledgerStore{log: zap.NewNop(), writer: newWriterID()}
	db, err := openStore(t.TempDir(), &l.bottom)
	require.NoError(t, err)
	l.db = db
	defer db.Close()
	decided := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC).UnixMilli()
	offset := int64(7)
	read := func(v any) {
		var b []byte
		switch v := v.(type) {
		case *schemas.JournalRecord:
			b, err = schemas.Journal.Encode(v)
		case *schemas.LedgerEntry:
			b, err = schemas.LedgerEntries.Encode(v)
		}
		require.NoError(t, err)
		l.apply(&kgo.Record{Partition: 2, Offset: offset, Value: b})
		offset++
	}
	ev := func(id, status string) schemas.JournalEvent {
		return schemas.JournalEvent{EventID: id, DecidedMs: decided, Attempt: 1, Status: status}
	}
	other := "another-process"
	read(&schemas.JournalRecord{Kind: schemas.JournalIntent, RequestID: "r1", Writer: other, Source: sourceMain, Events: []schemas.JournalEvent{ev("a", ""), ev("b", "")}})
	read(&schemas.JournalRecord{Kind: schemas.JournalIntent, RequestID: "r2", Writer: other, Source: sourceMain, Events: []schemas.JournalEvent{ev("c", "")}})
	read(&schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r1", Writer: other, Events: []schemas.JournalEvent{ev("a", StatusDelivered), ev("b", StatusRetrying)}})
	read(&schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r3", Writer: other, Events: []schemas.JournalEvent{ev("skip", StatusInDoubt)}})
	read(&schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r4", Writer: other, Resend: true, Events: []schemas.JournalEvent{ev("resend", StatusInDoubt)}})
	read(&schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: "r5", Writer: l.writer, Events: []schemas.JournalEvent{ev("own", StatusDelivered)}})
	read(&schemas.LedgerEntry{EventID: "old", DecidedMs: decided, DeliveredMs: decided + 1, Attempt: 1})
	l.commit()
	for id, want := range map[string]bool{"a": true, "b": false, "c": false, "skip": true, "resend": false, "own": false, "old": true} {
		require.Equal(t, want, l.delivered(&schemas.FilteredEvent{EventID: id, DecidedMs: decided}), id)
	}
	open, err := l.openIntents(2)
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, "r2", open[0].RequestID)
	none, err := l.openIntents(3)
	require.NoError(t, err)
	require.Empty(t, none)
	v, closer, err := db.Get(offsetKey(2))
	require.NoError(t, err)
	defer closer.Close()
	require.Equal(t, uint64(offset), binary.BigEndian.Uint64(v), "the next offset after the fetch")
}

// The runner stops overlapping polls only while journal outcomes wait for Kafka's
// acknowledgement longer than ledgerStall.
func TestJournalStalled(t *testing.T) {
	var w journal
	require.False(t, w.stalled(), "nothing outstanding")
	w.unacked.Store(3)
	w.since.Store(time.Now().UnixNano())
	require.False(t, w.stalled(), "outcomes outstanding for a moment")
	w.since.Store(time.Now().Add(-2 * ledgerStall).UnixNano())
	require.True(t, w.stalled(), "outcomes outstanding for longer than ledgerStall")
	w.unacked.Store(0)
	require.False(t, w.stalled(), "all acknowledged")
}
