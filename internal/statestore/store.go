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
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// Key layout (one byte of kind, then):
//
//	'c' user                                 -> the user's consent, as its changelog value
//	's' day(4, big endian) len(user) user id -> Seen (first/last seen, resends)
//	'o' changelog topic                      -> last applied offset (8, big endian)
//
// Seen ids are bucketed by the day of their first sighting, so dropping the ids older than the
// window is one range delete of whole days, never a scan.
const (
	kindConsent = 'c'
	kindSeen    = 's'
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
}

// cache is shared by every store of the process, so opening more partitions does not grow the
// memory pebble may use for blocks.
var cache = pebble.NewCache(64 << 20)

// Open opens (creating it if needed) the store in dir; ids are remembered for window.
func Open(dir string, window time.Duration) (*Store, error) {
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: 8 << 20,
		Logger:       quiet{},
		Levels:       make([]pebble.LevelOptions, 7),
	}
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
	return &Store{db: db, window: window}, nil
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

func seenKey(buf []byte, d uint32, user, id string) []byte {
	buf = append(buf[:0], kindSeen)
	buf = binary.BigEndian.AppendUint32(buf, d)
	buf = binary.AppendUvarint(buf, uint64(len(user)))
	buf = append(buf, user...)
	return append(buf, id...)
}

// Seen looks the id up in every day bucket the window covers at nowMs, newest first; an id
// first seen before the window is forgotten even while its bucket still exists.
func (s *Store) Seen(user, id string, nowMs int64) (Seen, bool, error) {
	from := nowMs - s.window.Milliseconds()
	var key [64]byte
	buf := key[:0]
	for d := dayOf(nowMs); ; d-- {
		buf = seenKey(buf, d, user, id)
		v, closer, err := s.db.Get(buf)
		if err == nil {
			seen, derr := decodeSeen(v)
			_ = closer.Close()
			if derr != nil {
				return Seen{}, false, derr
			}
			return seen, seen.FirstMs >= from, nil
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return Seen{}, false, fmt.Errorf("state store get: %w", err)
		}
		if d == 0 || d <= dayOf(from) {
			return Seen{}, false, nil
		}
	}
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

// Expire drops the day buckets wholly older than the window at nowMs: one range delete.
func (s *Store) Expire(nowMs int64) error {
	cut := dayOf(nowMs - s.window.Milliseconds())
	lo := []byte{kindSeen, 0, 0, 0, 0}
	hi := binary.BigEndian.AppendUint32([]byte{kindSeen}, cut)
	if err := s.db.DeleteRange(lo, hi, pebble.NoSync); err != nil {
		return fmt.Errorf("state store expire: %w", err)
	}
	return nil
}

// Batch is a set of changes applied atomically, together with the changelog offsets they bring
// the store to.
type Batch struct {
	b   *pebble.Batch
	key []byte
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch()} }

// PutConsent replaces the user's consent with v (a full state).
func (b *Batch) PutConsent(user string, v []byte) { _ = b.b.Set(consentKey(user), v, nil) }

// PutSeen replaces what is remembered of (user, id), in the bucket of its first sighting.
func (b *Batch) PutSeen(user, id string, v Seen) {
	b.key = seenKey(b.key, dayOf(v.FirstMs), user, id)
	_ = b.b.Set(b.key, encodeSeen(v), nil)
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
