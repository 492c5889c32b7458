package delivery

import (
	"hash/maphash"
	"sync"

	"github.com/tollgate-dev/tollgate/internal/growbloom"
)

// dayFilters is the in-memory filter in front of the ledger store: per decision day, a growing
// Bloom filter (growbloom, as the processor's id store keeps its days) of the event ids the store
// holds. Nearly every check is for a new event, which the filters answer without reading pebble;
// a "maybe" is confirmed in the store. Days are dropped with the store's (expire). A day's filter
// starts at the size of the largest day known and doubles when full, so a check asks a few
// filters however many events a day has (a filter of fixed size per 65,536 events made a check
// at 10,000 events/s ask thousands of them by the evening).
type dayFilters struct {
	mu   sync.RWMutex
	days map[uint32]*growbloom.Filter
}

// bloomCap events in a day's first filter when no day is known, and the false positive rate of
// each filter when full.
const (
	bloomCap    = 1 << 16
	bloomFPRate = 0.01
)

var filterSeed = maphash.MakeSeed()

func (f *dayFilters) add(d uint32, id string) {
	h := maphash.String(filterSeed, id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.days == nil {
		f.days = map[uint32]*growbloom.Filter{}
	}
	g := f.days[d]
	if g == nil {
		capacity := uint64(bloomCap)
		for _, other := range f.days {
			capacity = max(capacity, other.N())
		}
		g = growbloom.New(capacity, bloomFPRate)
		f.days[d] = g
	}
	g.Add(h)
}

// mayHold reports whether the store may hold id for day d (false: it surely does not).
func (f *dayFilters) mayHold(d uint32, id string) bool {
	h := maphash.String(filterSeed, id)
	f.mu.RLock()
	defer f.mu.RUnlock()
	g := f.days[d]
	return g != nil && g.Has(h)
}

// dropBefore forgets the days before d.
func (f *dayFilters) dropBefore(d uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.days {
		if k < d {
			delete(f.days, k)
		}
	}
}
