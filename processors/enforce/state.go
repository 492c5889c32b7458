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
