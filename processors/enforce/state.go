package enforce

import (
	"maps"
	"sync"

	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// userState is a user's latest consent plus the raw-topic partition it belongs to, so the state
// of partitions this process loses in a rebalance can be dropped.
type userState struct {
	consent.State
	partition int32
}

// record is the changelog form of the state.
func (u *userState) record(userKey string) *schemas.ConsentUpdate {
	return &schemas.ConsentUpdate{UserKey: userKey, Consent: u.Consent, TimestampMs: u.UpdatedMs, NoticeVersion: u.NoticeVersion, Erased: u.Erased}
}

// merge applies a consent update: the purposes it names replace the stored ones, others stay;
// an erasure is permanent.
func merge(prev *userState, u *schemas.ConsentUpdate, partition int32) *userState {
	next := &userState{partition: partition, State: consent.State{Consent: map[string]bool{}}}
	if prev != nil {
		maps.Copy(next.Consent, prev.Consent)
		next.Erased = prev.Erased
		next.NoticeVersion = prev.NoticeVersion
		next.UpdatedMs = prev.UpdatedMs
	}
	maps.Copy(next.Consent, u.Consent)
	next.Erased = next.Erased || u.Erased
	if u.NoticeVersion != "" {
		next.NoticeVersion = u.NoticeVersion
	}
	if u.TimestampMs > next.UpdatedMs {
		next.UpdatedMs = u.TimestampMs
	}
	return next
}

// stateStore is the processor's local view of every owned user's latest consent, rebuilt from
// the compacted consent-state topic on assignment.
type stateStore struct {
	mu    sync.RWMutex
	users map[string]*userState
}

func newStateStore() *stateStore { return &stateStore{users: map[string]*userState{}} }

func (s *stateStore) lookup(user string) *userState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.users[user]
}

// put installs a restored state.
func (s *stateStore) put(user string, st *userState) {
	s.mu.Lock()
	s.users[user] = st
	s.mu.Unlock()
}

// dropPartitions forgets the users of partitions this process no longer owns.
func (s *stateStore) dropPartitions(parts []int32) {
	drop := map[int32]bool{}
	for _, p := range parts {
		drop[p] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, u := range s.users {
		if drop[u.partition] {
			delete(s.users, k)
		}
	}
}

func (s *stateStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// stagedState holds the consent changes of one transaction until it commits.
type stagedState struct {
	store   *stateStore
	changed map[string]*userState
}

func (s *stateStore) begin() *stagedState {
	return &stagedState{store: s, changed: map[string]*userState{}}
}

// get returns the user's state as of this point of the batch, or nil.
func (b *stagedState) get(user string) *consent.State {
	u, ok := b.changed[user]
	if !ok {
		u = b.store.lookup(user)
	}
	if u == nil {
		return nil
	}
	return &u.State
}

func (b *stagedState) apply(u *schemas.ConsentUpdate, partition int32) *userState {
	prev, ok := b.changed[u.UserKey]
	if !ok {
		prev = b.store.lookup(u.UserKey)
	}
	next := merge(prev, u, partition)
	b.changed[u.UserKey] = next
	return next
}

func (s *stateStore) commit(b *stagedState) {
	s.mu.Lock()
	maps.Copy(s.users, b.changed)
	s.mu.Unlock()
}
