package statestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/greatroar/blobloom"
	"github.com/stretchr/testify/require"
)

// Saved filters are chunked (a day's filter here is three chunks) and count only with their
// day's marker: a save cut short (chunks, no marker) rebuilds that day from its ids, and a filter
// saved whole, as stores before chunks hold them, still loads.
func TestSavedFiltersInChunks(t *testing.T) {
	dir := t.TempDir()
	t0 := int64(1795000000000)
	saved := filterChunk
	filterChunk = 64 << 10 // the chunking of a production-size filter, on an eighth of its ids
	defer func() { filterChunk = saved }()
	const perDay = 25_000 // a filter of the minimum capacity a day (~100 KB): two chunks
	id := func(d, i int) ID { return IDOf("u"+strconv.Itoa(i%97), fmt.Sprintf("e%d-%d", d, i)) }
	s, err := Open(dir, 7*24*time.Hour)
	require.NoError(t, err)
	b := s.NewBatch()
	for d := range 3 {
		for i := range perDay {
			first := t0 + int64(d)*24*hourMs
			b.PutSeen(id(d, i), Seen{FirstMs: first, LastMs: first})
		}
	}
	require.NoError(t, b.Commit())
	require.NoError(t, s.Close())

	chunks := 0
	s, err = Open(dir, 7*24*time.Hour)
	require.NoError(t, err)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: dayPrefix(kindFilter, s.segs[0].day), UpperBound: dayPrefix(kindFilter, s.segs[0].day+1)})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) == filterKeyLen+2 {
			chunks++
		}
	}
	require.NoError(t, it.Close())
	require.Equal(t, 2, chunks, "one day's filter")
	for _, g := range s.segs {
		require.True(t, g.saved)
	}

	// Day 0 loses its marker (a save cut short); day 1's filter is rewritten whole, the old way.
	days := []uint32{s.segs[0].day, s.segs[1].day}
	require.NoError(t, s.db.Delete(binary.BigEndian.AppendUint16(dayPrefix(kindFilter, days[0]), completePart), pebble.NoSync))
	var whole bytes.Buffer
	p := s.segs[1].f.Parts()[0]
	_, err = blobloom.Dump(&whole, p.Bloom, fmt.Sprintf("n=%d cap=%d", p.N, p.Capacity))
	require.NoError(t, err)
	require.NoError(t, s.db.DeleteRange(dayPrefix(kindFilter, days[1]), dayPrefix(kindFilter, days[1]+1), pebble.NoSync))
	require.NoError(t, s.db.Set(binary.BigEndian.AppendUint16(dayPrefix(kindFilter, days[1]), 0), whole.Bytes(), pebble.NoSync))
	require.NoError(t, s.db.Flush())
	require.NoError(t, s.db.Close()) // no checkpoint: the filters stay as they were left

	s, err = Open(dir, 7*24*time.Hour)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, []bool{false, true, true}, []bool{s.segs[0].saved, s.segs[1].saved, s.segs[2].saved},
		"day 0 rebuilt, day 1 loaded whole, day 2 loaded from chunks")
	for d := range 3 {
		for i := 0; i < perDay; i += 1000 {
			_, ok, err := s.Seen(id(d, i), t0+3*24*hourMs)
			require.NoError(t, err)
			require.True(t, ok, "day %d id %d", d, i)
		}
	}
}

// TestCheckpointBesideCommits: a batch committed while a checkpoint saves the filters, the last
// write before the store closes, is found after a reopen. Before writers took turns, a batch
// committed between the save's dump of its segment's filter and the save's end left the segment
// marked saved without the batch's ids, so the close did not save it again and the reopen loaded
// a filter without them: the ids read as new (in the processor, a resend decided again).
func TestCheckpointBesideCommits(t *testing.T) {
	dir := t.TempDir()
	now := int64(1795000000000)
	const rounds, perBatch = 25, 100
	id := func(r, i int) ID { return IDOf("u", fmt.Sprintf("e%d-%d", r, i)) }
	put := func(s *Store, r int) error {
		b := s.NewBatch()
		for i := range perBatch {
			b.PutSeen(id(r, i), Seen{FirstMs: now, LastMs: now})
		}
		return b.Commit()
	}
	missing := 0
	for r := range rounds {
		s, err := Open(dir, 7*24*time.Hour)
		require.NoError(t, err)
		require.NoError(t, put(s, 2*r)) // the segment has ids its saved filter lacks
		done := make(chan error)
		go func() { done <- put(s, 2*r+1) }()
		require.NoError(t, s.Checkpoint())
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
		s, err = Open(dir, 7*24*time.Hour)
		require.NoError(t, err)
		for i := range perBatch {
			if _, ok, err := s.Seen(id(2*r+1, i), now); err != nil || !ok {
				missing++
			}
		}
		require.NoError(t, s.Close())
	}
	require.Zero(t, missing, "ids of the batch beside the checkpoint not found after a reopen")
}
