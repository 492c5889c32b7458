package statestore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/xxh3"
)

// ID is a remembered event: the 128-bit xxh3 hash of its user key and event id. Two of 50
// million ids collide with probability ~4e-24; a collision would make an event look like a resend.
// (SHA-256 cut to 128 bits would also resist crafted collisions, at four to five times the cost
// per event, BenchmarkIDOf; a crafted collision needs another user's future event id, which a
// sender does not know.)
type ID [16]byte

// IDOf is the id of (user key, event id). The user key is length-prefixed, so no two pairs
// hash the same bytes.
func IDOf(user, id string) ID {
	var buf [128]byte
	b := binary.AppendUvarint(buf[:0], uint64(len(user)))
	b = append(append(b, user...), id...)
	h := xxh3.Hash128(b)
	var out ID
	binary.BigEndian.PutUint64(out[:8], h.Hi)
	binary.BigEndian.PutUint64(out[8:], h.Lo)
	return out
}

// filterHash is the 64 bits of the id the segments' filters use.
func (id ID) filterHash() uint64 { return binary.BigEndian.Uint64(id[8:]) }

// Seen is what the store remembers of an event id.
type Seen struct {
	FirstMs, LastMs int64
	Resends         uint32 // copies absorbed after the first
}

func dayOf(ms int64) uint32 { return uint32(ms / int64(day/time.Millisecond)) }

const (
	idKeyLen = 1 + 4 + 16
	seenLen  = 8 + 8 + 4
)

func idKey(buf *[idKeyLen]byte, d uint32, id ID) []byte {
	buf[0] = kindID
	binary.BigEndian.PutUint32(buf[1:], d)
	copy(buf[5:], id[:])
	return buf[:]
}

// dayPrefix is the first key of day d's segment of kind ('h' ids or 'f' filters).
func dayPrefix(kind byte, d uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{kind}, d)
}

// encodeSeen writes a first sighting as its time alone (8 bytes), the common case, and a resent
// id in full.
func encodeSeen(buf *[seenLen]byte, v Seen) []byte {
	binary.BigEndian.PutUint64(buf[:], uint64(v.FirstMs))
	if v.Resends == 0 && v.LastMs == v.FirstMs {
		return buf[:8]
	}
	binary.BigEndian.PutUint64(buf[8:], uint64(v.LastMs))
	binary.BigEndian.PutUint32(buf[16:], v.Resends)
	return buf[:]
}

func decodeSeen(b []byte) (Seen, error) {
	switch len(b) {
	case 8:
		first := int64(binary.BigEndian.Uint64(b))
		return Seen{FirstMs: first, LastMs: first}, nil
	case seenLen:
		return Seen{FirstMs: int64(binary.BigEndian.Uint64(b)), LastMs: int64(binary.BigEndian.Uint64(b[8:])),
			Resends: binary.BigEndian.Uint32(b[16:])}, nil
	}
	return Seen{}, fmt.Errorf("state store seen value: %d bytes", len(b))
}

// Seen looks the id up; an id first seen before the window at nowMs is forgotten, even while
// expiry has not removed it yet. The segments' filters answer a new id alone; an id a filter
// holds (a resend, or a false positive: about 0.5% per segment) costs one point read. Segments
// are asked newest first, and a resend found stops the search: an SDK's retry, minutes after
// the first copy, asks one filter, not the week's eight.
func (s *Store) Seen(id ID, nowMs int64) (Seen, bool, error) {
	oldest := nowMs - s.window.Milliseconds()
	cut, h := dayOf(oldest), id.filterHash()
	var key [idKeyLen]byte
	for below := ^uint32(0); ; { // an id seen again after the window is refiled: newest wins
		d, ok := s.candidate(h, cut, below)
		if !ok {
			return Seen{}, false, nil
		}
		below = d
		v, ok, err := s.point(idKey(&key, d, id))
		if err != nil {
			return Seen{}, false, err
		}
		if !ok {
			continue // a false positive of d's filter
		}
		seen, err := decodeSeen(v)
		if err != nil {
			return Seen{}, false, err
		}
		return seen, seen.FirstMs >= oldest, nil
	}
}

// PutSeen replaces what is remembered of id, in the segment of the day of its first sighting.
func (b *Batch) PutSeen(id ID, v Seen) {
	d := dayOf(v.FirstMs)
	_ = b.b.Set(idKey(&b.key, d, id), encodeSeen(&b.value, v), nil)
	b.added = append(b.added, added{day: d, hash: id.filterHash()})
}

// Expire drops the segments of the days wholly before the window at nowMs: one range deletion
// of their ids and saved filters, however many ids they hold (pebble reclaims the space in its
// compactions).
func (s *Store) Expire(nowMs int64) error {
	cut := dayOf(nowMs - s.window.Milliseconds())
	s.mu.RLock()
	stale := len(s.segs) > 0 && s.segs[0].day < cut
	s.mu.RUnlock()
	if !stale {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(dayPrefix(kindID, 0), dayPrefix(kindID, cut), nil)
	_ = b.DeleteRange(dayPrefix(kindFilter, 0), dayPrefix(kindFilter, cut), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store expire: %w", err)
	}
	s.dropBefore(cut)
	return nil
}
