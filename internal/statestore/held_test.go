package statestore

import (
	"bytes"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// Held events' raw copies are kept in memory while they fit (the release a moment later drops
// them without pebble seeing either), past bodyMemory in pebble; a checkpoint writes those in
// memory to pebble, so a reopened store has every copy still held; a crash loses the ones in
// memory only (the processor fetches those from the raw topic).
func TestHeldCopiesInMemoryUntilACheckpoint(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := Open("st", time.Hour, WithFS(fs))
	require.NoError(t, err)
	body := func(off int64) []byte { return bytes.Repeat([]byte{byte(off)}, 1<<20) } // 1 MiB each
	const n = bodyMemory/(1<<20) + 4                                                 // four too many
	b := s.NewBatch()
	for off := range int64(n) {
		b.PutBody(off, body(off))
	}
	require.NoError(t, b.Commit())
	inMemory := func(s *Store) int {
		s.bodies.mu.Lock()
		defer s.bodies.mu.Unlock()
		return len(s.bodies.byOff)
	}
	require.Equal(t, n-4, inMemory(s), "the rest went to pebble")
	for off := range int64(n) {
		v, ok, err := s.Body(off)
		require.NoError(t, err)
		require.True(t, ok, off)
		require.Equal(t, body(off), v, off)
	}

	// Released: one in memory, one in pebble; both gone.
	b = s.NewBatch()
	b.DeleteBody(0)
	b.DeleteBody(n - 1)
	require.NoError(t, b.Commit())
	for _, off := range []int64{0, n - 1} {
		_, ok, err := s.Body(off)
		require.NoError(t, err)
		require.False(t, ok, off)
	}

	// Held and released in one batch: kept nowhere.
	b = s.NewBatch()
	b.PutBody(1000, body(1))
	b.DeleteBody(1000)
	require.NoError(t, b.Commit())
	_, ok, err := s.Body(1000)
	require.NoError(t, err)
	require.False(t, ok)

	// A crash before any checkpoint keeps only what went to pebble (once flushed).
	require.NoError(t, s.db.Flush())
	crashed, err := Open("st", time.Hour, WithFS(fs.CrashClone(vfs.CrashCloneCfg{})))
	require.NoError(t, err)
	for off := int64(1); off < n-1; off++ {
		_, ok, err := crashed.Body(off)
		require.NoError(t, err)
		require.Equal(t, off >= n-4, ok, off)
	}
	require.NoError(t, crashed.Close())

	// Close checkpoints: every copy still held is there after a reopen, and none in memory.
	require.NoError(t, s.Close())
	s, err = Open("st", time.Hour, WithFS(fs))
	require.NoError(t, err)
	defer s.Close()
	require.Zero(t, inMemory(s))
	for off := range int64(n) {
		v, ok, err := s.Body(off)
		require.NoError(t, err)
		require.Equal(t, off != 0 && off != n-1, ok, off)
		if ok {
			require.Equal(t, body(off), v)
		}
	}
}
