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
// enters its event. A record holds the requests of a moment, each naming its source partition
// (not the record's); a version 1 record is one request of the record's own partition. The
// partition's next offset is stored once per fetch.
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
		case *schemas.JournalRecordV1:
			b, err = schemas.JournalV1.Encode(v)
		case *schemas.LedgerEntry:
			b, err = schemas.LedgerEntries.Encode(v)
		}
		require.NoError(t, err)
		l.apply(&kgo.Record{Partition: 1, Offset: offset, Value: b})
		offset++
	}
	ev := func(id, status string) schemas.JournalEvent {
		return schemas.JournalEvent{EventID: id, DecidedMs: decided, Attempt: 1, Status: status}
	}
	intent := func(id string, part int32, evs ...schemas.JournalEvent) schemas.JournalRequest {
		return schemas.JournalRequest{Kind: schemas.JournalIntent, RequestID: id, Source: sourceMain, Partition: part, Events: evs}
	}
	outcome := func(id string, part int32, resend bool, evs ...schemas.JournalEvent) schemas.JournalRequest {
		return schemas.JournalRequest{Kind: schemas.JournalOutcome, RequestID: id, Source: sourceMain, Partition: part, Resend: resend, Events: evs}
	}
	other := "another-process"
	read(&schemas.JournalRecord{Writer: other, Requests: []schemas.JournalRequest{
		intent("r1", 2, ev("a", ""), ev("b", "")), intent("r2", 2, ev("c", "")), intent("r6", 3, ev("d", ""))}})
	read(&schemas.JournalRecord{Writer: other, Requests: []schemas.JournalRequest{
		outcome("r1", 2, false, ev("a", StatusDelivered), ev("b", StatusRetrying)), outcome("r3", 2, false, ev("skip", StatusInDoubt)),
		outcome("r4", 2, true, ev("resend", StatusInDoubt)), intent("r7", 2, ev("e", "")), outcome("r6", 3, false, ev("d", StatusDelivered))}})
	read(&schemas.JournalRecord{Writer: l.writer, Requests: []schemas.JournalRequest{outcome("r5", 2, false, ev("own", StatusDelivered))}})
	read(&schemas.JournalRecordV1{Kind: schemas.JournalIntent, RequestID: "v1-open", Writer: other, Source: sourceMain, Events: []schemas.JournalEvent{ev("f", "")}})
	read(&schemas.JournalRecordV1{Kind: schemas.JournalIntent, RequestID: "v1-closed", Writer: other, Source: sourceMain, Events: []schemas.JournalEvent{ev("g", "")}})
	read(&schemas.JournalRecordV1{Kind: schemas.JournalOutcome, RequestID: "v1-closed", Writer: other, Events: []schemas.JournalEvent{ev("g", StatusDelivered)}})
	read(&schemas.LedgerEntry{EventID: "old", DecidedMs: decided, DeliveredMs: decided + 1, Attempt: 1})
	l.commit()
	for id, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": false, "f": false, "g": true,
		"skip": true, "resend": false, "own": false, "old": true} {
		require.Equal(t, want, l.delivered(&schemas.FilteredEvent{EventID: id, DecidedMs: decided}), id)
	}
	ids := func(p int32) []string {
		open, err := l.openIntents(p)
		require.NoError(t, err)
		var out []string
		for _, q := range open {
			require.Equal(t, p, q.Partition)
			out = append(out, q.RequestID+":"+q.Events[0].EventID)
		}
		return out
	}
	require.ElementsMatch(t, []string{"r2:c", "r7:e"}, ids(2))
	require.Equal(t, []string{"v1-open:f"}, ids(1), "a version 1 intent is of the record's partition")
	require.Empty(t, ids(3))
	v, closer, err := db.Get(offsetKey(1))
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

// A repair's private store keeps only its own: the intents of its source (it alone settles
// them) and the entries of the events it may send; live traffic's intents and deliveries are
// read past without a write, and an outcome of a live request deletes nothing.
func TestPrivateStoreKeepsOnlyTheRepairsOwn(t *testing.T) {
	candidates := map[string]bool{"cand": true, "cand-doubt": true}
	l := &ledgerStore{log: zap.NewNop(), writer: newWriterID(),
		only: &storeScope{source: sourceRepair, event: func(id string) bool { return candidates[id] }}}
	db, err := openStore(t.TempDir(), &l.bottom)
	require.NoError(t, err)
	l.db = db
	defer db.Close()
	decided := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC).UnixMilli()
	req := func(kind, id, source, evID, status string) schemas.JournalRequest {
		return schemas.JournalRequest{Kind: kind, RequestID: id, Source: source, Partition: 0,
			Events: []schemas.JournalEvent{{EventID: evID, DecidedMs: decided, Attempt: 1, Status: status}}}
	}
	rec := &schemas.JournalRecord{Writer: "another-repair", Requests: []schemas.JournalRequest{
		req(schemas.JournalIntent, "live-open", sourceMain, "live", ""),
		req(schemas.JournalIntent, "repair-open", sourceRepair, "cand-doubt", ""),
		req(schemas.JournalOutcome, "live-done", sourceMain, "live", StatusDelivered),
		req(schemas.JournalOutcome, "repair-done", sourceRepair, "cand", StatusDelivered),
		req(schemas.JournalOutcome, "live-cand", sourceMain, "cand-doubt", StatusDelivered),
	}}
	b, err := schemas.Journal.Encode(rec)
	require.NoError(t, err)
	l.apply(&kgo.Record{Partition: 0, Offset: 0, Value: b})
	l.commit()
	for id, want := range map[string]bool{"cand": true, "cand-doubt": true, "live": false} {
		require.Equal(t, want, l.delivered(&schemas.FilteredEvent{EventID: id, DecidedMs: decided}), id)
	}
	open, err := l.openIntents(0)
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, "repair-open", open[0].RequestID, "only the repair's own intent is kept")
}
