// Package statestore keeps the consent processor's state of one raw partition on disk, in an
// embedded LSM store (pebble), the way Kafka Streams keeps RocksDB stores: each user's latest
// consent, the event ids seen inside the dedup window, and the last changelog offset applied to
// them. The Kafka changelog topics are the truth; the store is a cache of them that survives
// restarts, so a warm restart reads only the changelog's tail.
//
// Remembered ids are 128-bit hashes kept in day segments (ids.go), each with an in-memory
// blocked Bloom filter (segments.go): a new id, nearly every event, is answered by the filters
// alone, a likely resend by one point read, and expiry drops whole segments. Memory is pebble's
// bounded memtables and block cache plus about 1.6 bytes of filter per remembered id.
package statestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tollgate-dev/tollgate/internal/pebbledb"
)

// Key layout (one byte of kind, then):
//
//	'c' user                   -> the user's consent, as its changelog value
//	'h' day(4) id(16)          -> first seen ms (8) [, last seen ms (8), resends (4)]
//	'f' day(4) part(2) chunk(2) -> a chunk of a saved filter of the day's segment, and
//	'f' day(4) ffff            -> the day's filters are whole (segments.go)
//	'o' changelog topic        -> last applied offset (8, big endian)
//
// Days and integers are big endian, so a day's ids are one key range: expiry range-deletes it.
// Stores written before the packed ids kept 'i' (user, id) and 'x' (day bucket) keys instead;
// Legacy reports them, and the processor rebuilds such a store from the changelog.
const (
	kindConsent = 'c'
	kindID      = 'h'
	kindFilter  = 'f'
	kindOffset  = 'o'

	kindLegacySeen = 'i'
	kindLegacyDay  = 'x'
)

const day = 24 * time.Hour

// Store is one partition's state. It is safe for concurrent use: readers go on together, and
// writers (a batch's commit, a checkpoint, an expiry) take turns.
type Store struct {
	db *pebble.DB
	// wmu makes the writers take turns. A checkpoint saves a segment's filter as of a moment and
	// then marks it saved: a batch committed in between (its ids on disk, its filter bits added
	// after the dump) left a saved filter without them, and the next open loaded it, so those
	// ids read as new. The processor's restore of a partition and a batch still holding that
	// partition's store were such a pair (processors/enforce/revoke.go).
	wmu    sync.Mutex
	window time.Duration
	// bottom is set once the store has tables in its bottom level (L6). From then on consent
	// lookups are prefix seeks: pebble's Get never reads L6 bloom filters, so a miss there costs a
	// data-block read. Before, Get is cheaper (no iterator to set up).
	bottom atomic.Bool
	legacy bool

	mu   sync.RWMutex // guards segs; the writer holds it only to swap filters in
	segs []*segment   // by day, oldest first

	bodies bodyCache // held events' raw copies kept in memory (held.go)
}

// Memory of one store (one partition): its block cache holds blockCacheSize of blocks on top of
// its memtables, at most 56 MiB in all (336 MiB for the six partitions of the bench). Each store
// has its own cache: one shared by the partitions (64 MiB before) was wholly reserved by six
// stores' memtables (2 x 8 MiB each) and held no block at all (BenchmarkSeenWhileWriting: 114 µs
// a check instead of 12; internal/pebbledb says why).
//
// blockCacheSize holds the filter and index blocks of the consent keys and of the id tables, and
// the data blocks of the consent reads.
const (
	memTableSize   = 8 << 20
	blockCacheSize = 32 << 20
)

// Option changes how a store is opened.
type Option func(*pebble.Options)

// WithFS opens the store on fs instead of the OS's file system (tests simulate crashes on a
// crashable in-memory one).
func WithFS(fs vfs.FS) Option { return func(o *pebble.Options) { o.FS = fs } }

// Open opens (creating it if needed) the store in dir; ids are remembered for window. It loads
// the id segments' saved filters and rebuilds those that were not saved (after a crash) from the
// ids on disk.
func Open(dir string, window time.Duration, options ...Option) (*Store, error) {
	s := &Store{window: window}
	db, err := pebbledb.Open(dir, pebbledb.Config{MemTableSize: memTableSize, BlockCacheSize: blockCacheSize,
		Bottom: &s.bottom, Adjust: func(opts *pebble.Options) {
			// No write-ahead log: the changelog topics are the truth and each batch carries the
			// offsets it brings the store to, so after a crash the store is as of its last flush
			// (pebble flushes memtables in order: a prefix of the batches) and the restore reads
			// the changelog from there. Kafka Streams runs RocksDB the same way. Close flushes.
			opts.DisableWAL = true
			for i := range opts.Levels {
				// Small blocks: an id lookup that passes its segment's filter reads one random
				// block. Uncompressed: ids are random bytes, and a block read is then a copy and
				// a checksum (snappy's decode was a fifth of a resend's lookup).
				opts.Levels[i].BlockSize = 4 << 10
				opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
			}
			// No tombstone-density compactions: they exist to speed iterators through deleted
			// keys, and the deletes here (held events released, BenchmarkLateChoice) are in key
			// ranges that only point reads and the open's scan of the held lists visit. With them
			// on, a banner's held events made 15 such compactions per 400k events, half of the
			// bytes the store compacted; the level compactions still drop those tombstones.
			opts.Experimental.TombstoneDenseCompactionThreshold = -1
			for _, o := range options {
				o(opts)
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", dir, err)
	}
	s.db = db
	if err := s.openSegments(); err != nil {
		_ = db.Close()
		return nil, err
	}
	releaseMemory()
	return s, nil
}

// Checkpoint saves the segments' filters and the held events' copies kept in memory, and flushes
// everything applied so far to disk, so a crash after it loses nothing and the next open loads
// the filters instead of rebuilding them.
func (s *Store) Checkpoint() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.saveFilters(); err != nil {
		return err
	}
	if err := s.spillBodies(); err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("state store flush: %w", err)
	}
	releaseMemory()
	return nil
}

// releaseMemory returns the garbage of a filter load or save to the OS at once. Both handle
// filter-sized buffers (the save batches, a rebuilt day, a restore's outgrown filters: as much
// as the filters again), and the Go runtime otherwise keeps the heap's high-water mark for
// minutes: at 50M ids the process held 490 MB for 81 MB of filters (statebench). One collection
// per open, restore and close.
func releaseMemory() { debug.FreeOSMemory() }

// Close checkpoints and closes the store. It drops the filters: a closed store held by a caller
// (a restart in the same process) does not keep them alive.
func (s *Store) Close() error {
	err := s.Checkpoint()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	s.segs = nil
	s.mu.Unlock()
	return err
}

// Window is how long ids are remembered.
func (s *Store) Window() time.Duration { return s.window }

// Legacy reports that the store was written before remembered ids were packed: it must be
// rebuilt from the changelog.
func (s *Store) Legacy() bool { return s.legacy }

func (s *Store) get(key []byte) ([]byte, bool, error) {
	if s.bottom.Load() {
		return s.seek(key)
	}
	return s.point(key)
}

// point is a Get: it reads the filters of every level but L6, then one data block per level
// whose tables may hold key.
func (s *Store) point(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state store get: %w", err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// seek looks key up with a prefix seek that reads the bloom filters of every level, L6 included
// (for lookups that are mostly misses).
func (s *Store) seek(key []byte) ([]byte, bool, error) {
	it, err := s.db.NewIter(&seekOptions)
	if err != nil {
		return nil, false, fmt.Errorf("state store get: %w", err)
	}
	var v []byte
	ok := it.SeekPrefixGE(key)
	if ok {
		v = append([]byte(nil), it.Value()...)
	}
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("state store get: %w", err)
	}
	return v, ok, nil
}

// seekOptions make an iterator read L6's filters too (pebble skips those by default).
var seekOptions = pebble.IterOptions{UseL6Filters: true}

// Offset is the last changelog offset applied for topic; ok is false when none was.
func (s *Store) Offset(topic string) (off int64, ok bool, err error) {
	v, ok, err := s.get(append([]byte{kindOffset}, topic...))
	if !ok || err != nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("state store offset of %s: %d bytes", topic, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// Consent is the user's stored consent (the changelog value last applied), ok false if none.
func (s *Store) Consent(user string) (v []byte, ok bool, err error) {
	return s.get(consentKey(user))
}

func consentKey(user string) []byte {
	k := make([]byte, 0, 1+len(user))
	return append(append(k, kindConsent), user...)
}

// Batch is a set of changes applied atomically, together with the changelog offsets they bring
// the store to.
type Batch struct {
	s     *Store
	b     *pebble.Batch
	added []added // ids put, for the segments' filters once the batch is applied
	// bodies are the batch's changes to the held events' copies in memory (nil: dropped), and
	// bodyBytes the size of those it keeps (held.go).
	bodies    map[int64][]byte
	bodyBytes int
	key       [idKeyLen]byte
	value     [seenLen]byte
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, b: s.db.NewBatch()} }

// PutConsent replaces the user's consent with v (a full state).
func (b *Batch) PutConsent(user string, v []byte) { _ = b.b.Set(consentKey(user), v, nil) }

// SetOffset records that the batch brings the store up to offset off of the changelog topic.
func (b *Batch) SetOffset(topic string, off int64) {
	_ = b.b.Set(append([]byte{kindOffset}, topic...), binary.BigEndian.AppendUint64(nil, uint64(off)), nil)
}

// Len is the number of changes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Commit applies the batch. It is not written ahead or synced: after a crash the store is as of
// its last flush, behind (never ahead of) what the offsets say, as they are in the same batch.
func (b *Batch) Commit() error {
	defer b.b.Close()
	b.s.wmu.Lock()
	defer b.s.wmu.Unlock()
	b.s.unsave(b)
	if err := b.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store commit: %w", err)
	}
	b.s.remember(b.added)
	b.s.bodies.apply(b.bodies)
	return nil
}

// Discard drops an uncommitted batch.
func (b *Batch) Discard() { _ = b.b.Close() }

// Metrics are pebble's figures of the store (block cache hits and misses, tables per level):
// statebench prints them beside its timings.
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }
