// Package statestore keeps the consent processor's state of one raw partition on disk, in an
// embedded LSM store (pebble), the way Kafka Streams keeps RocksDB stores: each user's latest
// consent, the event ids seen inside the dedup window, and the last changelog offset applied to
// them. The Kafka changelog topics are the truth; the store is a cache of them that survives
// restarts, so a warm restart reads only the changelog's tail. Memory stays flat: pebble keeps a
// bounded memtable and block cache, whatever the number of users or ids.
package statestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Key layout (one byte of kind, then):
//
//	'c' user                                 -> the user's consent, as its changelog value
//	'i' len(user) user id                    -> Seen (first/last seen, resends)
//	'x' day(4, big endian) len(user) user id -> nothing: the id's day bucket
//	'o' changelog topic                      -> last applied offset (8, big endian)
//
// An id is looked up with one point read of its 'i' key (the dedup check runs for every event,
// and reading one key per day of the window would cost a read per day). Its 'x' entry files it
// under the day of its first sighting, so expiry reads only the day buckets past the window,
// deletes the ids they list and range-deletes the buckets: never a scan of the live ids.
const (
	kindConsent = 'c'
	kindSeen    = 'i'
	kindDay     = 'x'
	kindOffset  = 'o'
)

const day = 24 * time.Hour

// Seen is what the store remembers of an event id.
type Seen struct {
	FirstMs, LastMs int64
	Resends         uint32 // copies absorbed after the first
}

// Store is one partition's state. It is safe for concurrent readers and one writer.
type Store struct {
	db     *pebble.DB
	window time.Duration
	// bottom is set once the store has tables in its bottom level (L6). From then on lookups are
	// prefix seeks: pebble's Get never reads L6 bloom filters, so a miss (a new id, the common
	// case) there costs a data-block read. Before, Get is cheaper (no iterator to set up).
	bottom atomic.Bool
}

// Memory of one store (one partition): its block cache holds blockCacheSize of blocks on top of
// its memtables, at most 56 MiB in all (336 MiB for the six partitions of the bench).
//
// Pebble counts memtables against the block cache: each one reserves its size in the cache until
// it is flushed, and one spare is kept for reuse, so the cache keeps only what is left. A cache
// shared by the partitions (64 MiB before) was wholly reserved by six stores' memtables (2 x 8 MiB
// each): it held no block at all, and every dedup check read its filter and index blocks from
// disk (BenchmarkSeenWhileWriting: 2.2 block reads and 141 KB allocated per check, 114 µs; 12 µs
// and 0.7 KB with the blocks cached). So each store has its own cache, sized for blocks plus the
// memtables it will reserve (the mutable one, one being flushed, the spare).
//
// blockCacheSize holds the filter and index blocks of every table of a store of a few million
// ids (10 bits of filter per key), and the data blocks of the consent reads.
const (
	memTableSize   = 8 << 20
	blockCacheSize = 32 << 20
	cacheSize      = blockCacheSize + 3*memTableSize
)

// Open opens (creating it if needed) the store in dir; ids are remembered for window.
func Open(dir string, window time.Duration) (*Store, error) {
	s := &Store{window: window}
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref() // the store holds its own reference until it is closed
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: memTableSize,
		Logger:       quiet{},
	}
	bottomLevel := len(opts.Levels) - 1
	opts.EventListener = &pebble.EventListener{CompactionEnd: func(info pebble.CompactionInfo) {
		if info.Output.Level == bottomLevel && len(info.Output.Tables) > 0 {
			s.bottom.Store(true)
		}
	}}
	for i := range opts.Levels {
		// Most dedup checks are misses across the window's day buckets: bloom filters answer
		// them without reading data blocks.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].BlockSize = 16 << 10
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", dir, err)
	}
	s.db = db
	if db.Metrics().Levels[bottomLevel].TablesCount > 0 {
		s.bottom.Store(true)
	}
	return s, nil
}

// quiet keeps pebble's routine log lines (WAL replay, compactions) out of tollgate's log; errors
// reach the caller as returned errors.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Window is how long ids are remembered.
func (s *Store) Window() time.Duration { return s.window }

func (s *Store) get(key []byte) ([]byte, bool, error) {
	if s.bottom.Load() {
		return s.seek(key)
	}
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

func dayOf(ms int64) uint32 { return uint32(ms / int64(day/time.Millisecond)) }

func seenKey(buf []byte, user, id string) []byte {
	buf = append(buf[:0], kindSeen)
	buf = binary.AppendUvarint(buf, uint64(len(user)))
	buf = append(buf, user...)
	return append(buf, id...)
}

// dayKey is the id's entry in the bucket of day d: the seen key's body after the day.
func dayKey(buf []byte, d uint32, seen []byte) []byte {
	buf = append(buf[:0], kindDay)
	buf = binary.BigEndian.AppendUint32(buf, d)
	return append(buf, seen[1:]...)
}

// Seen looks the id up; an id first seen before the window at nowMs is forgotten, even while
// expiry has not removed it yet.
func (s *Store) Seen(user, id string, nowMs int64) (Seen, bool, error) {
	var key [96]byte
	v, ok, err := s.get(seenKey(key[:0], user, id))
	if !ok || err != nil {
		return Seen{}, false, err
	}
	seen, err := decodeSeen(v)
	if err != nil {
		return Seen{}, false, err
	}
	return seen, seen.FirstMs >= nowMs-s.window.Milliseconds(), nil
}

func encodeSeen(v Seen) []byte {
	b := make([]byte, 0, 20)
	b = binary.BigEndian.AppendUint64(b, uint64(v.FirstMs))
	b = binary.BigEndian.AppendUint64(b, uint64(v.LastMs))
	return binary.BigEndian.AppendUint32(b, v.Resends)
}

func decodeSeen(b []byte) (Seen, error) {
	if len(b) != 20 {
		return Seen{}, fmt.Errorf("state store seen value: %d bytes", len(b))
	}
	return Seen{FirstMs: int64(binary.BigEndian.Uint64(b)), LastMs: int64(binary.BigEndian.Uint64(b[8:])),
		Resends: binary.BigEndian.Uint32(b[16:])}, nil
}

// Expire drops the ids whose day bucket lies wholly before the window at nowMs: it reads those
// buckets only, deletes the ids they list (unless a later first sighting, after an expiry that
// had not run yet, refiled the id under a newer day), and range-deletes the buckets.
func (s *Store) Expire(nowMs int64) error {
	cut := dayOf(nowMs - s.window.Milliseconds())
	lo := []byte{kindDay}
	hi := binary.BigEndian.AppendUint32([]byte{kindDay}, cut)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("state store expire: %w", err)
	}
	b := s.db.NewBatch()
	var seen []byte
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 5 {
			continue
		}
		seen = append(append(seen[:0], kindSeen), k[5:]...)
		v, closer, err := s.db.Get(seen)
		if err == nil {
			cur, derr := decodeSeen(v)
			_ = closer.Close()
			if derr == nil && dayOf(cur.FirstMs) == binary.BigEndian.Uint32(k[1:5]) {
				_ = b.Delete(seen, nil)
			}
		} else if !errors.Is(err, pebble.ErrNotFound) {
			_ = it.Close()
			_ = b.Close()
			return fmt.Errorf("state store expire: %w", err)
		}
	}
	if err := it.Close(); err != nil {
		_ = b.Close()
		return fmt.Errorf("state store expire: %w", err)
	}
	_ = b.DeleteRange(lo, hi, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store expire: %w", err)
	}
	return nil
}

// Batch is a set of changes applied atomically, together with the changelog offsets they bring
// the store to.
type Batch struct {
	b        *pebble.Batch
	key, day []byte
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch()} }

// PutConsent replaces the user's consent with v (a full state).
func (b *Batch) PutConsent(user string, v []byte) { _ = b.b.Set(consentKey(user), v, nil) }

// PutSeen replaces what is remembered of (user, id), in the bucket of its first sighting.
func (b *Batch) PutSeen(user, id string, v Seen) {
	b.key = seenKey(b.key, user, id)
	b.day = dayKey(b.day, dayOf(v.FirstMs), b.key)
	_ = b.b.Set(b.key, encodeSeen(v), nil)
	_ = b.b.Set(b.day, nil, nil)
}

// SetOffset records that the batch brings the store up to offset off of the changelog topic.
func (b *Batch) SetOffset(topic string, off int64) {
	_ = b.b.Set(append([]byte{kindOffset}, topic...), binary.BigEndian.AppendUint64(nil, uint64(off)), nil)
}

// Len is the number of changes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Commit applies the batch. It is not fsynced: after a crash the store may be behind, never
// ahead, of what the offsets say (they are in the same batch), and the tail is read again.
func (b *Batch) Commit() error {
	defer b.b.Close()
	if err := b.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store commit: %w", err)
	}
	return nil
}

// Discard drops an uncommitted batch.
func (b *Batch) Discard() { _ = b.b.Close() }
