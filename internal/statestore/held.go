package statestore

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Held events (the pre-consent hold, CONTRACT §9) live beside the consent:
//
//	'w' user      -> the user's held events, as their changelog value (schemas.HeldEvents)
//	'e' offset(8) -> the raw record of a held event, so a release does not fetch it again
//
// The changelog holds only the offsets; the raw records are a local copy of the raw topic's,
// which a store rebuilt elsewhere fetches from the raw topic again (restore.go).
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
func (s *Store) Body(offset int64) (v []byte, ok bool, err error) { return s.point(bodyKey(offset)) }

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

// PutBody keeps the raw record of a held event.
func (b *Batch) PutBody(offset int64, v []byte) { _ = b.b.Set(bodyKey(offset), v, nil) }

// DeleteBody drops the raw record of a released event.
func (b *Batch) DeleteBody(offset int64) { _ = b.b.Delete(bodyKey(offset), nil) }
