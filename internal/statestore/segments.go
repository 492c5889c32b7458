package statestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/greatroar/blobloom"

	"github.com/tollgate-dev/tollgate/internal/growbloom"
)

// A segment is the ids first seen on one day, with a filter of them in memory (growbloom: a
// blocked Bloom filter sized for the day's ids, and a day that outgrows it gets another, twice as
// large). Close and Checkpoint save the filters beside the ids ('f' keys) so an open loads them;
// a batch that adds ids to a saved segment deletes its saved filters in the same batch, so a
// saved filter always holds every id of its day on disk (after a crash too), and a segment with
// none is rebuilt from its ids on open.
type segment struct {
	day   uint32
	f     *growbloom.Filter
	saved bool // f's parts are saved under the day's 'f' keys
}

// fpRate is each filter's false positive rate when full: 13 bits (1.6 bytes) per id
// (blobloom.Optimize). A new event passes one of a week's eight filters with ~4 %, each costing a
// point read of about 25 µs at 50 million ids: 1 % (11 bits) made that 2 µs of a 2.8 µs check.
const fpRate = 0.005

// minCapacity is the first filter of a new day when no day is known to size it by.
const minCapacity = 1 << 16

// added is an id a batch put, for its segment's filter.
type added struct {
	day  uint32
	hash uint64
}

// candidate returns the newest day from cut on and before below whose filter holds h. The
// filters are asked under the read lock, the store after it is released.
func (s *Store) candidate(h uint64, cut, below uint32) (uint32, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := len(s.segs) - 1; i >= 0 && s.segs[i].day >= cut; i-- {
		if g := s.segs[i]; g.day < below && g.f.Has(h) {
			return g.day, true
		}
	}
	return 0, false
}

// segment returns day d's segment, creating it (sized like the largest day) if create is set.
// The caller holds mu (for writing if create is set).
func (s *Store) segment(d uint32, create bool) *segment {
	i := len(s.segs)
	for i > 0 && s.segs[i-1].day >= d {
		i--
	}
	if i < len(s.segs) && s.segs[i].day == d {
		return s.segs[i]
	}
	if !create {
		return nil
	}
	capacity := uint64(minCapacity)
	for _, g := range s.segs {
		capacity = max(capacity, g.f.N())
	}
	return s.insert(i, &segment{day: d, f: growbloom.New(capacity, fpRate)})
}

// insert puts g at index i of segs.
func (s *Store) insert(i int, g *segment) *segment {
	s.segs = append(s.segs, nil)
	copy(s.segs[i+1:], s.segs[i:])
	s.segs[i] = g
	return g
}

// setParts gives day d's segment (made if missing) the filter of parts. The caller holds mu.
func (s *Store) setParts(d uint32, parts []*growbloom.Part, saved bool) {
	f := growbloom.FromParts(fpRate, parts...)
	if g := s.segment(d, false); g != nil {
		g.f, g.saved = f, saved
		return
	}
	i := len(s.segs)
	for i > 0 && s.segs[i-1].day > d {
		i--
	}
	s.insert(i, &segment{day: d, f: f, saved: saved})
}

// unsave adds to b the deletion of the saved filters of the segments it adds ids to (remember
// marks them unsaved once b is applied).
func (s *Store) unsave(b *Batch) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	last := ^uint32(0)
	for _, a := range b.added {
		if a.day == last {
			continue
		}
		last = a.day
		if g := s.segment(a.day, false); g != nil && g.saved {
			_ = b.b.DeleteRange(dayPrefix(kindFilter, a.day), dayPrefix(kindFilter, a.day+1), nil)
		}
	}
}

// remember adds a committed batch's ids to their segments' filters.
func (s *Store) remember(ids []added) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var g *segment
	for _, a := range ids {
		if g == nil || g.day != a.day {
			g = s.segment(a.day, true)
			g.saved = false
		}
		g.f.Add(a.hash)
	}
}

// dropBefore forgets the segments of days before cut.
func (s *Store) dropBefore(cut uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(s.segs) && s.segs[i].day < cut {
		i++
	}
	s.segs = append([]*segment(nil), s.segs[i:]...)
}

// openSegments loads the saved filters, rebuilds the segments that have none from their ids,
// and notes ids in the layout of before (Legacy).
func (s *Store) openSegments() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("state store open segments: %w", err)
	}
	defer it.Close()
	for _, k := range []byte{kindLegacySeen, kindLegacyDay} {
		if it.SeekGE([]byte{k}) && it.Key()[0] == k {
			s.legacy = true
		}
	}
	if err := s.loadFilters(it); err != nil {
		return err
	}
	for ok := it.SeekGE([]byte{kindID}); ok && it.Key()[0] == kindID; {
		k := it.Key()
		if len(k) != idKeyLen {
			return fmt.Errorf("state store id key of %d bytes", len(k))
		}
		d := binary.BigEndian.Uint32(k[1:])
		if g := s.segment(d, false); g == nil || !g.saved {
			f, err := scan(it, d)
			if err != nil {
				return err
			}
			s.setParts(d, []*growbloom.Part{f}, false)
		}
		ok = it.SeekGE(dayPrefix(kindID, d+1))
	}
	return it.Error()
}

// loadFilters reads the saved filters into segments. A day's filters count only when complete:
// saved in chunks, their day's marker follows them (saveFilter writes it last); saved whole (the
// layout before chunks, one batch), always. A day without is rebuilt from its ids (openSegments).
func (s *Store) loadFilters(it *pebble.Iterator) error {
	var (
		day             uint32
		parts           []*growbloom.Part
		chunked, broken bool // broken: a part did not read whole; the day is rebuilt
	)
	for ok := it.SeekGE([]byte{kindFilter}); ok && it.Key()[0] == kindFilter; {
		k := it.Key()
		if len(k) != filterKeyLen && len(k) != filterKeyLen+2 {
			return fmt.Errorf("state store filter key of %d bytes", len(k))
		}
		d, part := binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint16(k[5:])
		if d != day || parts == nil {
			if parts != nil && !chunked && !broken {
				s.setParts(day, parts, true) // saved whole, before chunks
			}
			day, parts, chunked, broken = d, []*growbloom.Part{}, false, false
		}
		if part == completePart {
			if !broken {
				s.setParts(day, parts, true)
			}
			parts = nil
			ok = it.Next()
			continue
		}
		chunked = chunked || len(k) > filterKeyLen
		f, next, err := loadFilter(it)
		if err != nil {
			return err
		}
		ok = next
		if f == nil {
			broken = true
			continue
		}
		parts = append(parts, f)
	}
	if parts != nil && !chunked && !broken {
		s.setParts(day, parts, true)
	}
	return it.Error()
}

// loadFilter reads the filter whose first key the iterator is at, streaming its chunks, and
// leaves the iterator after them. A filter that does not read whole is nil.
func loadFilter(it *pebble.Iterator) (*growbloom.Part, bool, error) {
	r := &chunkReader{it: it, prefix: append([]byte(nil), it.Key()[:filterKeyLen]...), value: it.Value()}
	l, err := blobloom.NewLoader(r)
	var f *growbloom.Part
	if err == nil {
		f = &growbloom.Part{}
		if _, err = fmt.Sscanf(l.Comment, "n=%d cap=%d", &f.N, &f.Capacity); err != nil {
			return nil, false, fmt.Errorf("state store filter header %q: %w", l.Comment, err)
		}
		f.Bloom, err = l.Load(nil)
	}
	if err != nil {
		f = nil
	}
	ok := r.skip()
	return f, ok, it.Error()
}

// chunkReader reads the values of consecutive keys that share prefix (a filter's chunks).
type chunkReader struct {
	it     *pebble.Iterator
	prefix []byte
	value  []byte
	done   bool // the iterator is past the chunks
	ok     bool // ... and at a valid key
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.value) == 0 {
		if !r.nextChunk() {
			return 0, io.EOF
		}
	}
	n := copy(p, r.value)
	r.value = r.value[n:]
	return n, nil
}

// nextChunk moves to the next key, reporting whether it is a chunk of the same filter.
func (r *chunkReader) nextChunk() bool {
	if r.done {
		return false
	}
	r.ok = r.it.Next()
	if !r.ok || !bytes.HasPrefix(r.it.Key(), r.prefix) {
		r.done = true
		return false
	}
	r.value = r.it.Value()
	return true
}

// skip moves past the filter's remaining chunks; it reports whether the iterator is then at a key.
func (r *chunkReader) skip() bool {
	for r.nextChunk() {
	}
	return r.ok
}

// scan makes day d's filter from its ids on disk, sized for them (two passes: count, then add).
func scan(it *pebble.Iterator, d uint32) (*growbloom.Part, error) {
	lo, hi := dayPrefix(kindID, d), dayPrefix(kindID, d+1)
	var n uint64
	for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
		n++
	}
	f := growbloom.NewPart(n, fpRate)
	for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
		f.Add(binary.BigEndian.Uint64(it.Key()[1+4+8:]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("state store rebuild filter: %w", err)
	}
	return f, nil
}

// saveFilters writes the filters of the segments changed since they were last saved, a batch
// per segment (a day's filter is megabytes: one batch for all would hold them all twice). A day
// that grew several filters is rebuilt into one first, so lookups ask one per day.
func (s *Store) saveFilters() error {
	s.mu.RLock()
	var dirty []*segment
	for _, g := range s.segs {
		if !g.saved {
			dirty = append(dirty, g)
		}
	}
	s.mu.RUnlock()
	if err := s.compactFilters(dirty); err != nil {
		return err
	}
	for _, g := range dirty {
		if err := s.saveFilter(g); err != nil {
			return err
		}
	}
	return nil
}

// Saved filters: 'f' day(4) part(2) chunk(2) -> up to filterChunk bytes of the part's dump, and
// 'f' day(4) completePart -> nothing, written last: the day's filters are whole. Stores from before
// chunks hold each part whole under 'f' day(4) part(2), written in one batch.
const (
	filterKeyLen = 1 + 4 + 2
	completePart = 0xffff
	// filterBatch is when a save commits and starts another batch: below half a memtable, so a
	// batch is copied into the memtable and not kept as one of its own.
	filterBatch = 2 << 20
)

// filterChunk bounds a saved value. A day's filter is megabytes, and pebble made a copy of a
// value that size at each step (the batch, kept as a memtable of its own, the table writer's
// block, the block cache on reading it back): at 50M ids those copies, garbage once written, held
// the process at twice its filters' size. A variable so a test can cut a small filter in chunks.
var filterChunk = 256 << 10

// saveFilter writes a segment's filters in chunks, in batches of filterBatch, then the day's
// marker. The first batch deletes the filters saved before: a crash midway leaves chunks with no
// marker, and the day is rebuilt from its ids at open.
func (s *Store) saveFilter(g *segment) error {
	w := &chunkWriter{db: s.db, b: s.db.NewBatch(), buf: make([]byte, 0, filterChunk)}
	_ = w.b.DeleteRange(dayPrefix(kindFilter, g.day), dayPrefix(kindFilter, g.day+1), nil)
	s.mu.RLock()
	for i, p := range g.f.Parts() {
		w.key = binary.BigEndian.AppendUint16(dayPrefix(kindFilter, g.day), uint16(i))
		w.chunk = 0
		_, err := blobloom.Dump(w, p.Bloom, fmt.Sprintf("n=%d cap=%d", p.N, p.Capacity))
		if err == nil {
			err = w.emit()
		}
		if err != nil {
			s.mu.RUnlock()
			w.b.Close()
			return fmt.Errorf("state store save filter: %w", err)
		}
	}
	s.mu.RUnlock()
	_ = w.b.Set(binary.BigEndian.AppendUint16(dayPrefix(kindFilter, g.day), completePart), nil, nil)
	err := w.b.Commit(pebble.NoSync)
	w.b.Close()
	if err != nil {
		return fmt.Errorf("state store save filter: %w", err)
	}
	s.mu.Lock()
	g.saved = true
	s.mu.Unlock()
	return nil
}

// chunkWriter cuts a filter's dump into chunks of filterChunk and puts them in batches.
type chunkWriter struct {
	db    *pebble.DB
	b     *pebble.Batch
	key   []byte // 'f' day part
	chunk uint16
	buf   []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf, p = w.buf[:len(w.buf)+k], p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.emit(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// emit puts the chunk so far in the batch, committing the batch once it is filterBatch.
func (w *chunkWriter) emit() error {
	if len(w.buf) == 0 {
		return nil
	}
	_ = w.b.Set(binary.BigEndian.AppendUint16(append([]byte(nil), w.key...), w.chunk), w.buf, nil)
	w.chunk++
	w.buf = w.buf[:0]
	if w.b.Len() < filterBatch {
		return nil
	}
	if err := w.b.Commit(pebble.NoSync); err != nil {
		return err
	}
	w.b.Close()
	w.b = w.db.NewBatch()
	return nil
}

// compactFilters rebuilds, from their ids on disk, the segments that grew more than one filter.
func (s *Store) compactFilters(segs []*segment) error {
	var it *pebble.Iterator
	for _, g := range segs {
		s.mu.RLock()
		parts := len(g.f.Parts())
		s.mu.RUnlock()
		if parts < 2 {
			continue
		}
		if it == nil {
			var err error
			if it, err = s.db.NewIter(nil); err != nil {
				return fmt.Errorf("state store compact filters: %w", err)
			}
			defer it.Close()
		}
		// Built aside and swapped in under the lock: lookups go on meanwhile.
		f, err := scan(it, g.day)
		if err != nil {
			return err
		}
		s.mu.Lock()
		g.f = growbloom.FromParts(fpRate, f)
		s.mu.Unlock()
	}
	return nil
}
