package enforce

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/statestore"
)

// A partition's store can be given up while a batch reads it: franz-go runs the revoke and lost
// callbacks on its group goroutine, concurrently with the batch, and pebble panics on a read or
// a batch commit after Close. The callbacks cannot wait for the batch to end: the transact
// session holds, while they run, the lock its End takes, so waiting would deadlock. Instead the
// batch holds a reference to each store it reads, and a store given up (revoked, lost, wiped)
// while held closes when the batch lets go of it. Until then the batch reads the store it
// started with; its transaction aborts anyway (the session saw the revocation).
//
// When the revocation came after End, the batch committed, and it does not write its changes
// into a store given up since it pinned it. The session's revoke callback takes the lock End
// holds from its decision to commit through EndTxn, and a revocation seen before that decision
// aborts the batch; so for a batch that committed the callback ran after EndTxn, the changelog
// holds the batch's records, and whoever opens the partition next (another member, or this one
// given it back) restores them from there. Had the batch written them too, the restore of a
// partition given back and the batch would write the same store at once: the batch's older
// consent states over newer ones restored, and (before statestore's writers took turns) the
// batch's ids missing from the filters a checkpoint saved, so that after a reopen their resends
// were decided again (TestRebalanceMidBatchUnderLoad, once).

// storeRefs counts the holders of each store and closes a store given up when the last one lets
// go. The zero value is ready to use.
type storeRefs struct {
	mu   sync.Mutex
	held map[*statestore.Store]int
	// retired are the stores given up while held, by partition.
	retired map[int32]*statestore.Store
	// givenUp counts the times each held store was given up (taken back or not).
	givenUp map[*statestore.Store]int
}

// pin is a store a batch holds, and how many times it had been given up when the batch took it.
type pin struct {
	db      *statestore.Store
	givenUp int
}

func (r *storeRefs) hold(db *statestore.Store) pin {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[*statestore.Store]int{}
	}
	r.held[db]++
	return pin{db: db, givenUp: r.givenUp[db]}
}

// kept reports that p's store has not been given up since it was pinned.
func (r *storeRefs) kept(p pin) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.givenUp[p.db] == p.givenUp
}

// close closes the partition's store now, or when its last holder releases it.
func (r *storeRefs) close(partition int32, db *statestore.Store) error {
	r.mu.Lock()
	if r.held[db] > 0 {
		if r.retired == nil {
			r.retired = map[int32]*statestore.Store{}
		}
		if r.givenUp == nil {
			r.givenUp = map[*statestore.Store]int{}
		}
		r.retired[partition] = db
		r.givenUp[db]++
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
	delete(r.givenUp, db) // the count matters only to holders, and there are none
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

// pin returns the partition's open store (none if it is not open), held until released.
func (s *stateStore) pin(partition int32) pin {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if db := s.parts[partition]; db != nil {
		return s.refs.hold(db) // under mu: closePartitions cannot give it up in between
	}
	return pin{}
}

// db is the partition's store as this batch reads it: pinned at first use, so a revocation
// meanwhile does not close it under the batch.
func (b *stagedState) db(partition int32) *statestore.Store {
	return b.pinOf(partition).db
}

// owned is the partition's store as this batch commits into it: the pinned store, unless it
// was given up since (nil then; see above).
func (b *stagedState) owned(partition int32) *statestore.Store {
	p := b.pinOf(partition)
	if p.db == nil || !b.store.refs.kept(p) {
		return nil
	}
	return p.db
}

func (b *stagedState) pinOf(partition int32) pin {
	if p, ok := b.pinned[partition]; ok {
		return p
	}
	p := b.store.pin(partition)
	if b.pinned == nil {
		b.pinned = map[int32]pin{}
	}
	b.pinned[partition] = p
	return p
}

// release lets go of the stores the batch pinned; one given up meanwhile closes now.
func (b *stagedState) release() error {
	var first error
	for part, p := range b.pinned {
		if p.db == nil {
			continue
		}
		if err := b.store.refs.release(part, p.db); err != nil && first == nil {
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

// consumedNow reports whether the session consumes a partition of topic now, by franz-go's group
// state: a partition has its offsets there from its assignment (or its first poll) on, and loses
// them at every revocation. The revoke callback does not tell the hold's window timer enough:
// franz-go's transact session passes only the first revocation of a transaction on to it (a
// second one before End is dropped: txn.go returns while the first is still unended), so the
// store and the hold index of that partition stay, and the timer would release held events of
// a partition another member now owns, which that member releases too.
// The offsets are read at the first question (a copy of franz-go's map): most batches ask none,
// as the timer scans at most every holdScanEvery.
func consumedNow(sess *kgo.GroupTransactSession, topic string) func(int32) bool {
	var offsets map[int32]kgo.EpochOffset
	read := false
	return func(partition int32) bool {
		if !read {
			offsets, read = sess.Client().CommittedOffsets()[topic], true
		}
		_, ok := offsets[partition]
		return ok
	}
}
