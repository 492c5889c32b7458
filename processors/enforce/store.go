package enforce

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// stateStore is the processor's view of the users and event ids of the raw partitions it owns:
// one on-disk store (internal/statestore) per partition, so memory does not grow with users or
// ids, and a lost partition is closed at once. Consent is kept as its changelog value (purpose
// names, not this process's codebook bits, which differ between processes).
type stateStore struct {
	book   *codebook
	dir    string
	window time.Duration
	mu     sync.RWMutex
	parts  map[int32]*statestore.Store
	// options open the stores (tests put them on a crashable in-memory file system).
	options []statestore.Option
	// refs keeps a store given up while a batch reads it open until the batch ends (revoke.go).
	refs storeRefs
	// holds indexes the users with held events of the open partitions (holdstate.go).
	holds holdIndex
}

func newStateStore(dir string, window time.Duration) *stateStore {
	return &stateStore{book: newCodebook(), dir: dir, window: window, parts: map[int32]*statestore.Store{}}
}

func (s *stateStore) partDir(partition int32) string {
	return filepath.Join(s.dir, strconv.Itoa(int(partition)))
}

// open opens the partition's store, if it is not open yet, with what it holds on disk.
func (s *stateStore) open(partition int32) (*statestore.Store, error) {
	return s.openWiping(partition, false)
}

// rebuild deletes what the partition's store held and opens it empty, for a restore from the
// changelogs' start.
func (s *stateStore) rebuild(partition int32) (*statestore.Store, error) {
	return s.openWiping(partition, true)
}

func (s *stateStore) openWiping(partition int32, wipe bool) (*statestore.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db := s.refs.reclaim(partition); db != nil && s.parts[partition] == nil {
		s.parts[partition] = db
	}
	if db := s.parts[partition]; db != nil {
		if !wipe {
			return db, nil
		}
		delete(s.parts, partition)
		if err := s.refs.close(partition, db); err != nil {
			return nil, fmt.Errorf("close state of partition %d: %w", partition, err)
		}
	}
	if wipe {
		s.holds.drop(partition)
		if err := os.RemoveAll(s.partDir(partition)); err != nil {
			return nil, fmt.Errorf("wipe state of partition %d: %w", partition, err)
		}
	}
	db, err := statestore.Open(s.partDir(partition), s.window, s.options...)
	if err != nil {
		return nil, err
	}
	s.parts[partition] = db
	return db, nil
}

func (s *stateStore) store(partition int32) *statestore.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parts[partition]
}

// closePartitions closes the stores of partitions this process no longer owns; their files stay
// for a warm restart should the partition come back.
func (s *stateStore) closePartitions(parts []int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, p := range parts {
		s.holds.drop(p)
		if db := s.parts[p]; db != nil {
			delete(s.parts, p)
			if err := s.refs.close(p, db); err != nil && first == nil {
				first = fmt.Errorf("close state of partition %d: %w", p, err)
			}
		}
	}
	return first
}

func (s *stateStore) closeAll() error {
	s.mu.RLock()
	parts := make([]int32, 0, len(s.parts))
	for p := range s.parts {
		parts = append(parts, p)
	}
	s.mu.RUnlock()
	return s.closePartitions(parts)
}

// lookup is the user's committed state. A partition that is not open has no users.
func (s *stateStore) lookup(partition int32, user string) (userState, bool, error) {
	return s.lookupIn(s.store(partition), user)
}

// lookupIn is the user's committed state in db (nil: none).
func (s *stateStore) lookupIn(db *statestore.Store, user string) (userState, bool, error) {
	if db == nil {
		return userState{}, false, nil
	}
	v, ok, err := db.Consent(user)
	if !ok || err != nil {
		return userState{}, false, err
	}
	u, err := schemas.ConsentUpdates.Decode(v)
	if err != nil {
		return userState{}, false, fmt.Errorf("decode stored consent: %w", err)
	}
	return s.book.merge(userState{}, &u), true, nil
}

// seen is what the partition's store remembers of id inside the window at nowMs.
func (s *stateStore) seen(partition int32, id statestore.ID, nowMs int64) (statestore.Seen, bool, error) {
	return seenIn(s.store(partition), id, nowMs)
}

// seenIn is what db (nil: none) remembers of id inside the window at nowMs.
func seenIn(db *statestore.Store, id statestore.ID, nowMs int64) (statestore.Seen, bool, error) {
	if db == nil {
		return statestore.Seen{}, false, nil
	}
	return db.Seen(id, nowMs)
}

// apply merges a consent update into the partition's store at once (replay, which has no
// transaction to wait for and no changelog).
func (s *stateStore) apply(partition int32, u *schemas.ConsentUpdate) error {
	db, err := s.open(partition)
	if err != nil {
		return err
	}
	prev, _, err := s.lookup(partition, u.UserKey)
	if err != nil {
		return err
	}
	b := db.NewBatch()
	b.PutConsent(u.UserKey, schemas.ConsentUpdates.MustEncode(s.book.record(u.UserKey, s.book.merge(prev, u))))
	return b.Commit()
}

// state is the engine's view of a user, nil when nothing is recorded.
func (s *stateStore) state(partition int32, user string) (*consent.State, error) {
	u, ok, err := s.lookup(partition, user)
	if !ok || err != nil {
		return nil, err
	}
	return s.book.decisionState(u.refused(), u.erased), nil
}

// stagedState holds one transaction's changes until it commits: then (and only then) they are
// written to the partitions' stores with the changelog offsets they were produced at.
type stagedState struct {
	store   *stateStore
	changed map[stagedKey]*schemas.ConsentUpdate // the changelog record of the user's new state
	users   map[stagedKey]userState
	ids     map[seenKey]statestore.Seen
	// keys holds a user key of each partition with ids: the key of its dedup changelog record,
	// which the producer's partitioner sends to that partition like the user's other records.
	keys map[int32]string
	// pinned are the stores the batch read, held open until it ends (revoke.go).
	pinned map[int32]pin
	// offsets are the highest changelog offsets produced per topic and partition (set by the
	// produce promises, read after the transaction ended).
	mu      sync.Mutex
	offsets map[string]map[int32]int64
	dups    int
	// holds are the batch's changes to held events (holdstate.go).
	holds heldChanges
}

type stagedKey struct {
	partition int32
	user      string
}

type seenKey struct {
	partition int32
	id        statestore.ID
}

func (s *stateStore) begin() *stagedState {
	return &stagedState{store: s, changed: map[stagedKey]*schemas.ConsentUpdate{}, users: map[stagedKey]userState{},
		ids: map[seenKey]statestore.Seen{}, keys: map[int32]string{}, offsets: map[string]map[int32]int64{}}
}

// lookup returns the user's state as of this point of the batch.
func (b *stagedState) lookup(partition int32, user string) (userState, bool, error) {
	if u, ok := b.users[stagedKey{partition, user}]; ok {
		return u, true, nil
	}
	return b.store.lookupIn(b.db(partition), user)
}

// apply stages a consent update and returns the changelog record of the user's new state.
func (b *stagedState) apply(partition int32, u *schemas.ConsentUpdate) (*schemas.ConsentUpdate, error) {
	prev, _, err := b.lookup(partition, u.UserKey)
	if err != nil {
		return nil, err
	}
	next := b.store.book.merge(prev, u)
	k := stagedKey{partition, u.UserKey}
	b.users[k] = next
	rec := b.store.book.record(u.UserKey, next)
	b.changed[k] = rec
	return rec, nil
}

// sighting records (user, id) seen at nowMs and returns what is now remembered of it; dup says
// it was already seen inside the window (in this batch or before).
func (b *stagedState) sighting(partition int32, user, id string, nowMs int64) (v statestore.Seen, dup bool, err error) {
	k := seenKey{partition, statestore.IDOf(user, id)}
	prev, ok, err := b.seenAt(k, nowMs)
	if err != nil {
		return v, false, err
	}
	if _, known := b.keys[partition]; !known {
		b.keys[partition] = user
	}
	if ok {
		v = statestore.Seen{FirstMs: prev.FirstMs, LastMs: max(prev.LastMs, nowMs), Resends: prev.Resends + 1}
		b.dups++
	} else {
		v = statestore.Seen{FirstMs: nowMs, LastMs: nowMs}
	}
	b.ids[k] = v
	return v, ok, nil
}

// seen reports whether an event not yet processed, of that dedup id, would be a resend as of
// this point of the batch (nothing is recorded).
func (b *stagedState) seen(partition int32, id statestore.ID, nowMs int64) (bool, error) {
	_, ok, err := b.seenAt(seenKey{partition, id}, nowMs)
	return ok, err
}

// seenAt is the id's last sighting as of this point of the batch: the batch's own, else the
// store's inside the dedup window.
func (b *stagedState) seenAt(k seenKey, nowMs int64) (statestore.Seen, bool, error) {
	if v, ok := b.ids[k]; ok {
		return v, true, nil
	}
	return seenIn(b.db(k.partition), k.id, nowMs)
}

// maxIDsPerRecord bounds the ids of one dedup changelog record (36 bytes each at most): a
// transaction's ids of a partition go in one record up to it, far below Kafka's 1 MiB record
// limit and hamba/avro's 1 MiB bound on a bytes field.
const maxIDsPerRecord = 20_000

// changelog is the batch's dedup changelog: one record per partition with the ids it saw
// (more only past maxIDsPerRecord), rather than a record per event.
func (b *stagedState) changelog(topic string) []*kgo.Record {
	packed := map[int32]*schemas.DedupIDs{}
	var recs []*kgo.Record
	emit := func(p int32, d *schemas.DedupIDs) {
		rec := encodeRecord(topic, []byte(b.keys[p]), schemas.DedupIDsCodec, d)
		rec.Partition = p // what the key's partitioner picks; set for readers of the batch
		recs = append(recs, rec)
	}
	for k, v := range b.ids {
		d := packed[k.partition]
		if d == nil {
			d = &schemas.DedupIDs{}
			packed[k.partition] = d
		}
		d.Add(schemas.DedupEntry{ID: k.id, FirstMs: v.FirstMs, LastMs: v.LastMs, Resends: v.Resends})
		if d.Len() == maxIDsPerRecord {
			emit(k.partition, d)
			packed[k.partition] = nil
		}
	}
	for p, d := range packed {
		if d != nil {
			emit(p, d)
		}
	}
	return recs
}

// produced notes a changelog record's offset (from a produce promise).
func (b *stagedState) produced(topic string, partition int32, offset int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.offsets[topic]
	if m == nil {
		m = map[int32]int64{}
		b.offsets[topic] = m
	}
	m[partition] = max(m[partition], offset)
}

// commit writes a committed transaction's changes to the stores, each partition's in one batch
// with the changelog offsets they bring it to. A crash before this leaves the store behind the
// changelog, and the restore reads those records again: they are full states, so applying one
// twice is the same as once.
func (s *stateStore) commit(b *stagedState) error {
	// One decision per partition: its store's batch, or nil for a store not open or given up
	// meanwhile (the changelog has those changes for the next owner).
	batches := map[int32]*statestore.Batch{}
	batch := func(p int32) *statestore.Batch {
		if bb, decided := batches[p]; decided {
			return bb
		}
		var bb *statestore.Batch
		if db := b.owned(p); db != nil {
			bb = db.NewBatch()
		}
		batches[p] = bb
		return bb
	}
	for k, rec := range b.changed {
		if bb := batch(k.partition); bb != nil {
			bb.PutConsent(k.user, schemas.ConsentUpdates.MustEncode(rec))
		}
	}
	for k, v := range b.ids {
		if bb := batch(k.partition); bb != nil {
			bb.PutSeen(k.id, v)
		}
	}
	b.commitHeld(batch)
	for topic, parts := range b.offsets {
		for p, off := range parts {
			if bb := batch(p); bb != nil {
				bb.SetOffset(topic, off)
			}
		}
	}
	var first error
	for _, bb := range batches {
		if bb == nil {
			continue
		}
		if err := bb.Commit(); err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		b.indexHeld(batches)
	}
	return first
}
