package enforce

import (
	"math/bits"
	"sync"

	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// userState is a user's latest recorded consent, packed into 32 bytes: the processor holds one per
// user of the partitions it owns, so its size is the processor's memory per user. Purposes are bit
// positions handed out by a codebook; notice versions are interned.
type userState struct {
	recorded  uint64 // bit i: purpose i has a recorded choice
	granted   uint64 // bit i: that choice is true
	updatedMs int64
	notice    uint32 // index into the codebook's notice versions; 0 is none
	erased    bool
}

// refused is the set of purposes the user's latest choice says false for: the only recorded
// choices the consent engine acts on (a recorded true never grants by itself, docs/consent.md, rule 3).
func (u userState) refused() uint64 { return u.recorded &^ u.granted }

// maxPurposes is how many distinct purposes a codebook can name; the policy has a handful.
const maxPurposes = 64

// codebook interns purpose names and notice versions, and shares one immutable consent.State per
// distinct (refused purposes, erased) pair, so deciding an event allocates nothing for its state.
type codebook struct {
	mu       sync.RWMutex
	purposes map[string]uint
	names    []string
	notices  map[string]uint32
	versions []string
	states   map[stateKey]*consent.State
}

type stateKey struct {
	refused uint64
	erased  bool
}

func newCodebook() *codebook {
	return &codebook{purposes: map[string]uint{}, notices: map[string]uint32{}, versions: []string{""},
		states: map[stateKey]*consent.State{}}
}

// bit returns the purpose's bit, adding it if new; ok is false once maxPurposes are named.
func (c *codebook) bit(purpose string) (b uint64, ok bool) {
	c.mu.RLock()
	i, found := c.purposes[purpose]
	c.mu.RUnlock()
	if found {
		return 1 << i, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, found = c.purposes[purpose]; !found {
		if len(c.names) == maxPurposes {
			return 0, false
		}
		i = uint(len(c.names))
		c.purposes[purpose] = i
		c.names = append(c.names, purpose)
	}
	return 1 << i, true
}

func (c *codebook) notice(v string) uint32 {
	if v == "" {
		return 0
	}
	c.mu.RLock()
	i, ok := c.notices[v]
	c.mu.RUnlock()
	if ok {
		return i
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok = c.notices[v]; !ok {
		i = uint32(len(c.versions))
		c.notices[v] = i
		c.versions = append(c.versions, v)
	}
	return i
}

// decisionState is the engine's view of a user: erased, and false for each refused purpose.
func (c *codebook) decisionState(refused uint64, erased bool) *consent.State {
	k := stateKey{refused, erased}
	c.mu.RLock()
	st, ok := c.states[k]
	c.mu.RUnlock()
	if ok {
		return st
	}
	st = &consent.State{Erased: erased, Consent: map[string]bool{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for m := refused; m != 0; m &= m - 1 {
		st.Consent[c.names[bits.TrailingZeros64(m)]] = false
	}
	c.states[k] = st
	return st
}

// merge applies a consent update: the purposes it names replace the stored ones, others stay; an
// erasure is permanent. Purposes beyond maxPurposes cannot be stored and are dropped (ingest only
// accepts the policy's purposes, so only a foreign changelog record could carry them).
func (c *codebook) merge(prev userState, u *schemas.ConsentUpdate) userState {
	next := prev
	for purpose, choice := range u.Consent {
		b, ok := c.bit(purpose)
		if !ok {
			continue
		}
		next.recorded |= b
		if choice {
			next.granted |= b
		} else {
			next.granted &^= b
		}
	}
	next.erased = next.erased || u.Erased
	if u.NoticeVersion != "" {
		next.notice = c.notice(u.NoticeVersion)
	}
	next.updatedMs = max(next.updatedMs, u.TimestampMs)
	return next
}

// record is the changelog form of a user's state: the full merged consent.
func (c *codebook) record(user string, u userState) *schemas.ConsentUpdate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rec := &schemas.ConsentUpdate{UserKey: user, Consent: map[string]bool{}, TimestampMs: u.updatedMs,
		NoticeVersion: c.versions[u.notice], Erased: u.erased}
	for m := u.recorded; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		rec.Consent[c.names[i]] = u.granted&(1<<i) != 0
	}
	return rec
}

// stateStore is the processor's local view of every owned user's latest consent, per raw
// partition (so a lost partition's users are dropped at once), rebuilt from the compacted
// consent-state topic on assignment.
type stateStore struct {
	book  *codebook
	mu    sync.RWMutex
	parts map[int32]map[string]userState
}

func newStateStore() *stateStore {
	return &stateStore{book: newCodebook(), parts: map[int32]map[string]userState{}}
}

func (s *stateStore) lookup(partition int32, user string) (userState, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.parts[partition][user]
	return u, ok
}

// put installs a state (restore, commit).
func (s *stateStore) put(partition int32, user string, u userState) {
	s.mu.Lock()
	s.putLocked(partition, user, u)
	s.mu.Unlock()
}

func (s *stateStore) putLocked(partition int32, user string, u userState) {
	m := s.parts[partition]
	if m == nil {
		m = map[string]userState{}
		s.parts[partition] = m
	}
	m[user] = u
}

// apply merges a consent update into the stored state at once (restore and replay, which have
// no transaction to wait for).
func (s *stateStore) apply(partition int32, u *schemas.ConsentUpdate) {
	prev, _ := s.lookup(partition, u.UserKey)
	s.put(partition, u.UserKey, s.book.merge(prev, u))
}

// state is the engine's view of a user, nil when nothing is recorded.
func (s *stateStore) state(partition int32, user string) *consent.State {
	u, ok := s.lookup(partition, user)
	if !ok {
		return nil
	}
	return s.book.decisionState(u.refused(), u.erased)
}

// dropPartitions forgets the users of partitions this process no longer owns.
func (s *stateStore) dropPartitions(parts []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		delete(s.parts, p)
	}
}

func (s *stateStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.parts {
		n += len(m)
	}
	return n
}

// stagedState holds the consent changes of one transaction until it commits.
type stagedState struct {
	store   *stateStore
	changed map[stagedKey]userState
}

type stagedKey struct {
	partition int32
	user      string
}

func (s *stateStore) begin() *stagedState {
	return &stagedState{store: s, changed: map[stagedKey]userState{}}
}

// lookup returns the user's state as of this point of the batch.
func (b *stagedState) lookup(partition int32, user string) (userState, bool) {
	if u, ok := b.changed[stagedKey{partition, user}]; ok {
		return u, true
	}
	return b.store.lookup(partition, user)
}

// apply stages a consent update and returns the changelog record of the user's new state.
func (b *stagedState) apply(partition int32, u *schemas.ConsentUpdate) *schemas.ConsentUpdate {
	prev, _ := b.lookup(partition, u.UserKey)
	next := b.store.book.merge(prev, u)
	b.changed[stagedKey{partition, u.UserKey}] = next
	return b.store.book.record(u.UserKey, next)
}

func (s *stateStore) commit(b *stagedState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, u := range b.changed {
		s.putLocked(k.partition, k.user, u)
	}
}
