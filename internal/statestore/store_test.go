package statestore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const hourMs = int64(time.Hour / time.Millisecond)

func TestSeenWithinWindowAndExpiry(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 48*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	b := s.NewBatch()
	b.PutSeen("u1", "e1", Seen{FirstMs: t0, LastMs: t0})
	b.PutSeen("u1", "e2", Seen{FirstMs: t0 + 30*hourMs, LastMs: t0 + 30*hourMs})
	require.NoError(t, b.Commit())

	got, ok, err := s.Seen("u1", "e1", t0+47*hourMs)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, t0, got.FirstMs)
	_, ok, err = s.Seen("u2", "e1", t0+hourMs) // another user's id is another key
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = s.Seen("u1", "e1", t0+49*hourMs) // past the window: forgotten
	require.NoError(t, err)
	require.False(t, ok)

	// Expiry removes whole day buckets older than the window, and only those.
	require.NoError(t, s.Expire(t0+100*hourMs))
	n := 0
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key()[0]; k == kindSeen || k == kindDay {
			n++
		}
	}
	require.NoError(t, it.Close())
	require.Equal(t, 0, n, "both ids (and their day entries) are older than the window at t0+100h")
}

func TestExpireKeepsBucketsInsideWindow(t *testing.T) {
	s, err := Open(t.TempDir(), 48*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	b := s.NewBatch()
	b.PutSeen("u", "old", Seen{FirstMs: t0, LastMs: t0})
	b.PutSeen("u", "new", Seen{FirstMs: t0 + 72*hourMs, LastMs: t0 + 72*hourMs, Resends: 2})
	require.NoError(t, b.Commit())
	require.NoError(t, s.Expire(t0+96*hourMs))
	got, ok, err := s.Seen("u", "new", t0+96*hourMs)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint32(2), got.Resends)
	_, ok, err = s.Seen("u", "old", t0+1*hourMs) // even asked at its own time, the id is gone
	require.NoError(t, err)
	require.False(t, ok)
}

// An id seen again after the window (before expiry ran) starts over under its new day; the
// expiry of its old day must not delete it.
func TestExpireKeepsAnIdRefiledUnderANewerDay(t *testing.T) {
	s, err := Open(t.TempDir(), 24*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	t0 := int64(1795000000000)
	b := s.NewBatch()
	b.PutSeen("u", "e", Seen{FirstMs: t0, LastMs: t0})
	require.NoError(t, b.Commit())
	later := t0 + 72*hourMs
	_, ok, err := s.Seen("u", "e", later)
	require.NoError(t, err)
	require.False(t, ok, "past the window")
	b = s.NewBatch()
	b.PutSeen("u", "e", Seen{FirstMs: later, LastMs: later})
	require.NoError(t, b.Commit())
	require.NoError(t, s.Expire(later))
	got, ok, err := s.Seen("u", "e", later+hourMs)
	require.NoError(t, err)
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

// Lookups are point reads until the store has bottom-level tables, then prefix seeks (so bloom
// filters answer misses at every level, L6 included): either way a key that is a prefix of a
// stored one, or that a stored one is a prefix of, is a miss.
func TestLookupsMatchWholeKeysOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 48*time.Hour)
	require.NoError(t, err)
	defer func() { s.Close() }()
	now := int64(1795000000000)
	b := s.NewBatch()
	b.PutSeen("u1", "e12", Seen{FirstMs: now, LastMs: now})
	b.PutConsent("u12", []byte("c"))
	require.NoError(t, b.Commit())
	check := func() {
		_, ok, err := s.Seen("u1", "e12", now)
		require.NoError(t, err)
		require.True(t, ok)
		for _, id := range []string{"e1", "e123"} {
			_, ok, err = s.Seen("u1", id, now)
			require.NoError(t, err)
			require.False(t, ok, id)
		}
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
