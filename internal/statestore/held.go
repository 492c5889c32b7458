package statestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Held events (the pre-consent hold, CONTRACT §9) live beside the consent:
//
//	'w' user      -> the user's held events, as their changelog value (schemas.HeldEvents)
//	'e' offset(8) -> the raw record of a held event, so a release does not fetch it again
//
// The changelog holds only the offsets; the raw records are a local copy of the raw topic's,
// which a store rebuilt elsewhere fetches from the raw topic again (restore.go).
//
// Most held events are released seconds later (a banner answered), so their raw copies are kept
// in memory, up to bodyMemory per store, and written to pebble only past that or at a
// checkpoint (and so at close). In pebble, each copy filled the memtable with a value deleted a
// moment later: the flushes came twice as often, and their tables were compacted again
// (BenchmarkLateChoice). A crash loses the copies in memory as it loses an unflushed
// memtable: the restore fetches the missing ones from the raw topic.
const (
	kindHeld = 'w'
	kindBody = 'e'
)

func heldKey(user string) []byte {
	k := make([]byte, 0, 1+len(user))
	return append(append(k, kindHeld), user...)
}

func bodyKey(offset int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindBody}, uint64(offset))
}

// Held is the user's held events (their changelog value), ok false when none are held.
func (s *Store) Held(user string) (v []byte, ok bool, err error) { return s.point(heldKey(user)) }

// Body is the raw record of the held event at offset, ok false when the store has no copy.
func (s *Store) Body(offset int64) (v []byte, ok bool, err error) {
	if v, ok := s.bodies.get(offset); ok {
		return v, true, nil
	}
	return s.point(bodyKey(offset))
}

// bodyMemory is how many bytes of held events' raw copies a store keeps in memory: a million
// held events of ~200 bytes are 200 MB, so past this they go to pebble.
const bodyMemory = 16 << 20

// bodyCache is the raw copies a store keeps in memory (none of them is also in pebble).
type bodyCache struct {
	mu    sync.Mutex
	byOff map[int64][]byte
	size  int
}

func (c *bodyCache) get(offset int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.byOff[offset]
	return v, ok
}

// room reports whether n more bytes fit.
func (c *bodyCache) room(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size+n <= bodyMemory
}

// apply makes a committed batch's changes: a copy kept (set) or dropped (nil).
func (c *bodyCache) apply(ops map[int64][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for off, v := range ops {
		if old, ok := c.byOff[off]; ok {
			c.size -= len(old)
			delete(c.byOff, off)
		}
		if v != nil {
			if c.byOff == nil {
				c.byOff = map[int64][]byte{}
			}
			c.byOff[off] = v
			c.size += len(v)
		}
	}
}

// snapshot is the copies in memory, for a spill.
func (c *bodyCache) snapshot() map[int64][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byOff)
}

// forget drops the copies a spill wrote to pebble.
func (c *bodyCache) forget(spilled map[int64][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for off := range spilled {
		c.size -= len(c.byOff[off])
		delete(c.byOff, off)
	}
	if len(c.byOff) == 0 {
		c.byOff = nil // a map keeps its buckets once emptied
	}
}

// spillBodies writes the copies in memory to pebble (a checkpoint's, so a restart finds them),
// in batches of at most spillBatch bytes: a batch over half a memtable becomes a memtable of its
// own, kept after the flush (BenchmarkHoldMillion's heap doubled with one 16 MiB batch).
func (s *Store) spillBodies() error {
	all := s.bodies.snapshot() // kept in memory until pebble has them: a failed spill loses none
	b := s.db.NewBatch()
	for off, v := range all {
		_ = b.Set(bodyKey(off), v, nil)
		if b.Len() >= spillBatch {
			if err := commitSpill(b); err != nil {
				return err
			}
			b = s.db.NewBatch()
		}
	}
	if err := commitSpill(b); err != nil {
		return err
	}
	s.bodies.forget(all)
	return nil
}

const spillBatch = 2 << 20

func commitSpill(b *pebble.Batch) error {
	defer b.Close()
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store held events' copies: %w", err)
	}
	return nil
}

// EachHeld calls fn with every user who has held events and their changelog value (fn must not
// keep v), in key order: how the processor rebuilds its index of holds when a store opens.
func (s *Store) EachHeld(fn func(user string, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindHeld}, UpperBound: []byte{kindHeld + 1}})
	if err != nil {
		return fmt.Errorf("state store held events: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(string(it.Key()[1:]), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state store held events: %w", err)
	}
	return nil
}

// PutHeld replaces the user's held events with v (a full list).
func (b *Batch) PutHeld(user string, v []byte) { _ = b.b.Set(heldKey(user), v, nil) }

// DeleteHeld records that the user has no held events any more.
func (b *Batch) DeleteHeld(user string) { _ = b.b.Delete(heldKey(user), nil) }

// PutBody keeps the raw record of a held event: in memory while the store's share has room (a
// copy, so the fetch buffer v came from is not pinned), else in pebble.
func (b *Batch) PutBody(offset int64, v []byte) {
	if b.s.bodies.room(b.bodyBytes + len(v)) {
		b.keepBody(offset, bytes.Clone(v))
		b.bodyBytes += len(v)
		return
	}
	_ = b.b.Set(bodyKey(offset), v, nil)
}

// DeleteBody drops the raw record of a released event, from where PutBody put it.
func (b *Batch) DeleteBody(offset int64) {
	if _, ok := b.s.bodies.get(offset); ok || b.bodies[offset] != nil {
		b.keepBody(offset, nil)
		return
	}
	_ = b.b.Delete(bodyKey(offset), nil)
}

// keepBody records the batch's change to the copy at offset in memory (nil: dropped).
func (b *Batch) keepBody(offset int64, v []byte) {
	if b.bodies == nil {
		b.bodies = map[int64][]byte{}
	}
	b.bodies[offset] = v
}
