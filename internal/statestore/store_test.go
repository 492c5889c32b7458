package statestore

import (
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

const hourMs = int64(time.Hour / time.Millisecond)

func seen(t *testing.T, s *Store, user, id string, nowMs int64) (Seen, bool) {
	t.Helper()
	v, ok, err := s.Seen(IDOf(user, id), nowMs)
	require.NoError(t, err)
	return v, ok
}

func put(t *testing.T, s *Store, user, id string, v Seen) {
	t.Helper()
	b := s.NewBatch()
	b.PutSeen(IDOf(user, id), v)
	require.NoError(t, b.Commit())
}

// countIDs is the number of id keys on disk.
func countIDs(t *testing.T, s *Store) int {
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == kindID {
			n++
		}
	}
	return n
}

func TestSeenWithinWindowAndExpiry(t *testing.T) {
	s, err := Open(t.TempDir(), 48*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	b := s.NewBatch()
	b.PutSeen(IDOf("u1", "e1"), Seen{FirstMs: t0, LastMs: t0})
	b.PutSeen(IDOf("u1", "e2"), Seen{FirstMs: t0 + 30*hourMs, LastMs: t0 + 30*hourMs})
	require.NoError(t, b.Commit())

	got, ok := seen(t, s, "u1", "e1", t0+47*hourMs)
	require.True(t, ok)
	require.Equal(t, t0, got.FirstMs)
	_, ok = seen(t, s, "u2", "e1", t0+hourMs) // another user's id is another id
	require.False(t, ok)
	_, ok = seen(t, s, "u", "1e1", t0+hourMs) // the user key is length-prefixed in the hash
	require.False(t, ok)
	_, ok = seen(t, s, "u1", "e1", t0+49*hourMs) // past the window: forgotten
	require.False(t, ok)

	// Expiry drops whole day segments older than the window, and only those.
	require.NoError(t, s.Expire(t0+100*hourMs))
	require.Equal(t, 0, countIDs(t, s), "both ids are older than the window at t0+100h")
	require.Empty(t, s.segs)
}

func TestExpireKeepsSegmentsInsideWindow(t *testing.T) {
	s, err := Open(t.TempDir(), 48*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	put(t, s, "u", "old", Seen{FirstMs: t0, LastMs: t0})
	put(t, s, "u", "new", Seen{FirstMs: t0 + 72*hourMs, LastMs: t0 + 80*hourMs, Resends: 2})
	require.NoError(t, s.Expire(t0+96*hourMs))
	got, ok := seen(t, s, "u", "new", t0+96*hourMs)
	require.True(t, ok)
	require.Equal(t, Seen{FirstMs: t0 + 72*hourMs, LastMs: t0 + 80*hourMs, Resends: 2}, got)
	_, ok = seen(t, s, "u", "old", t0+1*hourMs) // even asked at its own time, the id is gone
	require.False(t, ok)
	require.Equal(t, 1, countIDs(t, s))
}

// An id seen again after the window (before expiry ran) starts over under its new day; the
// expiry of its old day must not delete it.
func TestExpireKeepsAnIdRefiledUnderANewerDay(t *testing.T) {
	s, err := Open(t.TempDir(), 24*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	put(t, s, "u", "e", Seen{FirstMs: t0, LastMs: t0})
	later := t0 + 72*hourMs
	_, ok := seen(t, s, "u", "e", later)
	require.False(t, ok, "past the window")
	put(t, s, "u", "e", Seen{FirstMs: later, LastMs: later})
	require.NoError(t, s.Expire(later))
	got, ok := seen(t, s, "u", "e", later+hourMs)
	require.True(t, ok)
	require.Equal(t, later, got.FirstMs)
}

func TestOffsetCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Hour)
	require.NoError(t, err)
	_, ok, err := s.Offset("tg.consent.state")
	require.NoError(t, err)
	require.False(t, ok)
	b := s.NewBatch()
	b.PutConsent("u1", []byte("state-1"))
	b.SetOffset("tg.consent.state", 41)
	require.NoError(t, b.Commit())
	b = s.NewBatch()
	b.PutConsent("u1", []byte("state-2"))
	b.Discard() // never applied: neither the value nor an offset
	require.NoError(t, s.Close())

	s, err = Open(dir, time.Hour)
	require.NoError(t, err)
	defer s.Close()
	off, ok, err := s.Offset("tg.consent.state")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(41), off)
	v, ok, err := s.Consent("u1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "state-1", string(v))
}

// Consent lookups are point reads until the store has bottom-level tables, then prefix seeks (so
// bloom filters answer misses at every level, L6 included): either way a key that is a prefix of
// a stored one, or that a stored one is a prefix of, is a miss.
func TestLookupsMatchWholeKeysOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 48*time.Hour)
	require.NoError(t, err)
	defer func() { s.Close() }()
	b := s.NewBatch()
	b.PutConsent("u12", []byte("c"))
	require.NoError(t, b.Commit())
	check := func() {
		v, ok, err := s.Consent("u12")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte("c"), v)
		for _, u := range []string{"u1", "u123"} {
			_, ok, err = s.Consent(u)
			require.NoError(t, err)
			require.False(t, ok, u)
		}
	}
	check()
	require.False(t, s.bottom.Load(), "nothing in L6 yet: point reads")
	require.NoError(t, s.db.Compact(t.Context(), []byte{0}, []byte{0xff}, true))
	require.True(t, s.bottom.Load(), "compacted into L6: prefix seeks")
	check()
	require.NoError(t, s.Close())
	s, err = Open(dir, 48*time.Hour)
	require.NoError(t, err)
	require.True(t, s.bottom.Load(), "reopened with L6 tables: prefix seeks")
	check()
}

// A closed store saves its segments' filters and the next open loads them; a store that was not
// closed (a crash) rebuilds them from its ids. Either way every id is found again.
func TestFiltersSavedOrRebuilt(t *testing.T) {
	fs := vfs.NewCrashableMem()
	t0 := int64(1795000000000)
	s, err := Open("st", 7*24*time.Hour, WithFS(fs))
	require.NoError(t, err)
	const n = 3000
	b := s.NewBatch()
	for i := range n {
		first := t0 + int64(i%3)*24*hourMs // three days
		b.PutSeen(IDOf("u", string(rune('a'+i%26))+strconv.Itoa(i)), Seen{FirstMs: first, LastMs: first})
	}
	require.NoError(t, b.Commit())
	require.NoError(t, s.Close())

	check := func(s *Store) {
		for i := range n {
			_, ok := seen(t, s, "u", string(rune('a'+i%26))+strconv.Itoa(i), t0+3*24*hourMs)
			require.True(t, ok, i)
		}
	}
	s, err = Open("st", 7*24*time.Hour, WithFS(fs))
	require.NoError(t, err)
	require.Len(t, s.segs, 3)
	for _, g := range s.segs {
		require.True(t, g.saved, "loaded, not rebuilt")
		require.Equal(t, uint64(n/3), g.f.N())
	}
	check(s)

	// New ids on the last day, flushed but the process dies before Close: that day's saved filter
	// was deleted with the batch that added them, so the open rebuilds it; the others load.
	b = s.NewBatch()
	b.PutSeen(IDOf("u", "late"), Seen{FirstMs: t0 + 2*24*hourMs + 1, LastMs: t0 + 2*24*hourMs + 1})
	require.NoError(t, b.Commit())
	require.NoError(t, s.db.Flush())
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s2, err := Open("st", 7*24*time.Hour, WithFS(crashed))
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, []bool{true, true, false}, []bool{s2.segs[0].saved, s2.segs[1].saved, s2.segs[2].saved})
	check(s2)
	_, ok := seen(t, s2, "u", "late", t0+3*24*hourMs)
	require.True(t, ok)
	require.NoError(t, s.db.Close())
}

// Without a write-ahead log, a crash loses the batches applied since the last flush, and only
// whole batches from the end: the offset stored says exactly which changelog records to read again.
func TestCrashLosesOnlyAnUnflushedTail(t *testing.T) {
	fs := vfs.NewCrashableMem()
	t0 := int64(1795000000000)
	s, err := Open("st", 7*24*time.Hour, WithFS(fs))
	require.NoError(t, err)
	apply := func(off int64) {
		b := s.NewBatch()
		b.PutSeen(IDOf("u", strconv.FormatInt(off, 10)), Seen{FirstMs: t0, LastMs: t0})
		b.PutConsent("u", []byte(strconv.FormatInt(off, 10)))
		b.SetOffset("dedup", off)
		require.NoError(t, b.Commit())
	}
	for off := range int64(10) {
		apply(off)
	}
	require.NoError(t, s.Checkpoint())
	for off := int64(10); off < 20; off++ {
		apply(off)
	}
	s2, err := Open("st", 7*24*time.Hour, WithFS(fs.CrashClone(vfs.CrashCloneCfg{})))
	require.NoError(t, err)
	defer s2.Close()
	off, ok, err := s2.Offset("dedup")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(9), off, "as of the checkpoint")
	v, _, err := s2.Consent("u")
	require.NoError(t, err)
	require.Equal(t, "9", string(v), "the data matches its offset")
	for i := range 20 {
		_, ok := seen(t, s2, "u", strconv.Itoa(i), t0)
		require.Equal(t, i < 10, ok, i)
	}
	require.NoError(t, s.db.Close())
}

// A store of before the packed ids (per-id keys) says so, and the processor rebuilds it.
func TestLegacyStoreIsReported(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Hour)
	require.NoError(t, err)
	require.False(t, s.Legacy())
	require.NoError(t, s.db.Set([]byte("x\x00\x00\x4e\x20\x01ue"), nil, pebble.NoSync))
	require.NoError(t, s.Close())
	s, err = Open(dir, time.Hour)
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.Legacy())
}
