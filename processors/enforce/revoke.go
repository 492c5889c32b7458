package enforce

import (
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/statestore"
)

// A partition's store can be given up while a batch reads it: franz-go runs the revoke and lost
// callbacks on its group goroutine, concurrently with the batch, and pebble panics on a read or
// a batch commit after Close. The callbacks cannot wait for the batch to end: the transact
// session holds, while they run, the lock its End takes, so waiting would deadlock. Instead the
// batch holds a reference to each store it reads, and a store given up (revoked, lost, wiped)
// while held closes when the batch lets go of it. Until then the batch reads the store it
// started with; its transaction aborts anyway (the session saw the revocation), or, when the
// revocation came after End, the committed changes still reach the store they belong to.

// storeRefs counts the holders of each store and closes a store given up when the last one lets
// go. The zero value is ready to use.
type storeRefs struct {
	mu   sync.Mutex
	held map[*statestore.Store]int
	// retired are the stores given up while held, by partition.
	retired map[int32]*statestore.Store
}

func (r *storeRefs) hold(db *statestore.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[*statestore.Store]int{}
	}
	r.held[db]++
}

// close closes the partition's store now, or when its last holder releases it.
func (r *storeRefs) close(partition int32, db *statestore.Store) error {
	r.mu.Lock()
	if r.held[db] > 0 {
		if r.retired == nil {
			r.retired = map[int32]*statestore.Store{}
		}
		r.retired[partition] = db
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	return db.Close()
}

// release drops one hold of the partition's store, closing it if it was given up meanwhile.
func (r *storeRefs) release(partition int32, db *statestore.Store) error {
	r.mu.Lock()
	r.held[db]--
	if r.held[db] > 0 {
		r.mu.Unlock()
		return nil
	}
	delete(r.held, db)
	retired := r.retired[partition] == db
	if retired {
		delete(r.retired, partition)
	}
	r.mu.Unlock()
	if !retired {
		return nil
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close state of partition %d: %w", partition, err)
	}
	return nil
}

// reclaim takes back a store given up but still held (the partition was assigned again before
// the batch that holds it ended): it is open, and a second pebble on its folder could not lock it.
func (r *storeRefs) reclaim(partition int32) *statestore.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	db := r.retired[partition]
	delete(r.retired, partition)
	return db
}

// pin returns the partition's open store (nil if it is not open), held until released.
func (s *stateStore) pin(partition int32) *statestore.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	db := s.parts[partition]
	if db != nil {
		s.refs.hold(db) // under mu: closePartitions cannot give it up in between
	}
	return db
}

// db is the partition's store as this batch reads and commits it: pinned at first use, so a
// revocation meanwhile does not close it under the batch.
func (b *stagedState) db(partition int32) *statestore.Store {
	if db, ok := b.pinned[partition]; ok {
		return db
	}
	db := b.store.pin(partition)
	if b.pinned == nil {
		b.pinned = map[int32]*statestore.Store{}
	}
	b.pinned[partition] = db
	return db
}

// release lets go of the stores the batch pinned; one given up meanwhile closes now.
func (b *stagedState) release() error {
	var first error
	for part, db := range b.pinned {
		if db == nil {
			continue
		}
		if err := b.store.refs.release(part, db); err != nil && first == nil {
			first = err
		}
	}
	b.pinned = nil
	return first
}

// release ends the batch's hold on its stores (deferred by processBatch, whatever its outcome).
func (p *Processor) release(batch *stagedState) {
	if err := batch.release(); err != nil {
		p.log.Warn("closing a revoked partition's state store", zap.Error(err))
	}
}
