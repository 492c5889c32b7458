package delivery

import (
	"hash/maphash"
	"sync"

	"github.com/greatroar/blobloom"
)

// dayFilters is the in-memory filter in front of the ledger store: per decision day, blocked
// Bloom filters (blobloom, as the processor's id store uses) of the event ids the store holds.
// Nearly every check is for a new event, which the filters answer without reading pebble; a
// "maybe" is confirmed in the store. Days are dropped with the store's (expire), and a filter
// that fills up gets a fresh one beside it, so the false positive rate stays near 1% however
// many events a day has.
type dayFilters struct {
	mu   sync.RWMutex
	days map[uint32][]*dayFilter
}

type dayFilter struct {
	f *blobloom.Filter
	n int
}

// bloomCap events per filter, at bloomFPRate false positives when full.
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
		f.days = map[uint32][]*dayFilter{}
	}
	fs := f.days[d]
	if len(fs) == 0 || fs[len(fs)-1].n >= bloomCap {
		fs = append(fs, &dayFilter{f: blobloom.NewOptimized(blobloom.Config{Capacity: bloomCap, FPRate: bloomFPRate})})
		f.days[d] = fs
	}
	last := fs[len(fs)-1]
	last.f.Add(h)
	last.n++
}

// mayHold reports whether the store may hold id for day d (false: it surely does not).
func (f *dayFilters) mayHold(d uint32, id string) bool {
	h := maphash.String(filterSeed, id)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, x := range f.days[d] {
		if x.f.Has(h) {
			return true
		}
	}
	return false
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
