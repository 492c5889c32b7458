package enforce

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The held events' state (the policy's hold, hold.go): per user, the list of held events in the
// partition's store ('w' keys, the changelog's value) and a copy of each held raw record; in
// memory, an index of the users who have any, with how many and since when, so an event of a
// user with nothing held costs one map lookup and the window's timer never reads the store.

// holdMeta is what the index knows of one user's held events.
type holdMeta struct {
	count    int
	oldestMs int64 // arrival of the oldest
}

// holdIndex is the index of every open partition's held users.
type holdIndex struct {
	mu    sync.Mutex
	parts map[int32]map[string]holdMeta
	total int // held events in all partitions (the held-events gauge)
}

func (x *holdIndex) has(partition int32, user string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.parts[partition][user]
	return ok
}

// set records the user's held events (none: removes the user).
func (x *holdIndex) set(partition int32, user string, h *schemas.HeldEvents) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.parts == nil {
		x.parts = map[int32]map[string]holdMeta{}
	}
	users := x.parts[partition]
	if users == nil {
		users = map[string]holdMeta{}
		x.parts[partition] = users
	}
	x.total -= users[user].count
	if len(h.Events) == 0 {
		delete(users, user)
		return
	}
	users[user] = holdMeta{count: len(h.Events), oldestMs: h.Events[0].ArrivedMs}
	x.total += len(h.Events)
}

// drop forgets a partition this process no longer owns.
func (x *holdIndex) drop(partition int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range x.parts[partition] {
		x.total -= m.count
	}
	delete(x.parts, partition)
}

// due lists, per partition, the users whose oldest held event arrived at or before cutoffMs,
// and the oldest arrival of all (0: nothing held).
func (x *holdIndex) due(cutoffMs int64) (map[int32][]string, int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[int32][]string{}
	var oldest int64
	for p, users := range x.parts {
		for u, m := range users {
			if oldest == 0 || m.oldestMs < oldest {
				oldest = m.oldestMs
			}
			if m.oldestMs <= cutoffMs {
				out[p] = append(out[p], u)
			}
		}
	}
	return out, oldest
}

func (x *holdIndex) held() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total
}

// index rebuilds the partition's entries from its store (after a restore).
func (x *holdIndex) index(partition int32, db *statestore.Store) error {
	x.drop(partition)
	return db.EachHeld(func(user string, v []byte) error {
		h, err := schemas.HeldEventsCodec.Decode(v)
		if err != nil {
			return fmt.Errorf("decode held events of a user: %w", err)
		}
		x.set(partition, user, &h)
		return nil
	})
}

type bodyKey struct {
	partition int32
	offset    int64
}

// heldChanges are one transaction's changes to the held events, applied to the store and the
// index only once it commits.
type heldChanges struct {
	lists  map[stagedKey]*schemas.HeldEvents // the user's new list; no events: none held
	bodies map[bodyKey][]byte                // raw records kept (nil: dropped)
	// fresh are the users of lists that had no committed list when the batch first read them:
	// one emptied again within the batch (held and released by one batch, as when the choice
	// follows at once) writes nothing, neither a tombstone to the changelog nor a delete to the
	// store.
	fresh map[stagedKey]bool
}

// unchanged reports whether the user's list ends the batch as it began: none held.
func (c *heldChanges) unchanged(k stagedKey, h *schemas.HeldEvents) bool {
	return len(h.Events) == 0 && c.fresh[k]
}

// hasHeld reports whether the user has held events as of this point of the batch.
func (b *stagedState) hasHeld(partition int32, user string) bool {
	if h, ok := b.holds.lists[stagedKey{partition, user}]; ok {
		return len(h.Events) > 0
	}
	return b.store.holds.has(partition, user)
}

// heldOf is the user's held events as of this point of the batch, for the caller to change and
// give back with setHeld.
func (b *stagedState) heldOf(partition int32, user string) (*schemas.HeldEvents, error) {
	k := stagedKey{partition, user}
	if h, ok := b.holds.lists[k]; ok {
		return h, nil
	}
	h := &schemas.HeldEvents{UserKey: user, Events: []schemas.HeldEvent{}}
	db := b.db(partition)
	if db == nil || !b.store.holds.has(partition, user) {
		if b.holds.fresh == nil {
			b.holds.fresh = map[stagedKey]bool{}
		}
		b.holds.fresh[k] = true
		return h, nil
	}
	v, ok, err := db.Held(user)
	if !ok || err != nil {
		return h, err
	}
	if *h, err = schemas.HeldEventsCodec.Decode(v); err != nil {
		return nil, fmt.Errorf("decode held events: %w", err)
	}
	return h, nil
}

func (b *stagedState) setHeld(partition int32, h *schemas.HeldEvents) {
	if b.holds.lists == nil {
		b.holds.lists = map[stagedKey]*schemas.HeldEvents{}
	}
	b.holds.lists[stagedKey{partition, h.UserKey}] = h
}

func (b *stagedState) keepBody(partition int32, offset int64, v []byte) {
	if b.holds.bodies == nil {
		b.holds.bodies = map[bodyKey][]byte{}
	}
	b.holds.bodies[bodyKey{partition, offset}] = v
}

// dropBody drops a held event's raw record: from the store, or only from the batch when the
// batch kept it (an offset is held once, so the store never had it).
func (b *stagedState) dropBody(partition int32, offset int64) {
	k := bodyKey{partition, offset}
	if v, ok := b.holds.bodies[k]; ok && v != nil {
		delete(b.holds.bodies, k)
		return
	}
	b.keepBody(partition, offset, nil)
}

// body is the raw record of a held event.
func (b *stagedState) body(partition int32, offset int64) ([]byte, error) {
	if v, ok := b.holds.bodies[bodyKey{partition, offset}]; ok && v != nil {
		return v, nil
	}
	db := b.db(partition)
	if db == nil {
		return nil, fmt.Errorf("held event at offset %d of partition %d: partition not open", offset, partition)
	}
	v, ok, err := db.Body(offset)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("held event at offset %d of partition %d: no copy in the state store", offset, partition)
	}
	return v, nil
}

// heldChangelog is the batch's held-events changelog: one record per user whose held events
// changed, keyed by the user (so it lands on the partition of the user's events), a tombstone
// when none are held any more.
func (b *stagedState) heldChangelog(topic string) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(b.holds.lists))
	for k, h := range b.holds.lists {
		if b.holds.unchanged(k, h) {
			continue
		}
		rec := &kgo.Record{Topic: topic, Key: []byte(k.user), Partition: k.partition}
		if len(h.Events) > 0 {
			rec.Value = schemas.HeldEventsCodec.MustEncode(h)
		}
		recs = append(recs, rec)
	}
	return recs
}

// commitHeld writes the committed changes to the partitions' store batches and the index.
func (b *stagedState) commitHeld(batch func(int32) *statestore.Batch) {
	for k, h := range b.holds.lists {
		bb := batch(k.partition)
		if bb == nil || b.holds.unchanged(k, h) {
			continue
		}
		if len(h.Events) == 0 {
			bb.DeleteHeld(k.user)
		} else {
			bb.PutHeld(k.user, schemas.HeldEventsCodec.MustEncode(h))
		}
	}
	for k, v := range b.holds.bodies {
		if bb := batch(k.partition); bb != nil {
			if v == nil {
				bb.DeleteBody(k.offset)
			} else {
				bb.PutBody(k.offset, v)
			}
		}
	}
}

// indexHeld brings the index up to the committed changes (after the store batches committed),
// for the partitions whose store took them (batches, commit's): one revoked during the batch was
// dropped from the index, and an entry for it would make the window's timer release events
// another processor now holds.
func (b *stagedState) indexHeld(batches map[int32]*statestore.Batch) {
	for k, h := range b.holds.lists {
		if batches[k.partition] != nil && !b.holds.unchanged(k, h) {
			b.store.holds.set(k.partition, k.user, h)
		}
	}
}
