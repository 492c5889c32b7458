package delivery

import (
	"hash/maphash"
	"sync"
)

// dayFilters is the in-memory filter in front of the ledger store: per decision day, bloom
// filters of the event ids the store holds. Nearly every check is for a new event, which the
// filters answer without reading pebble; a "maybe" is confirmed in the store. Days are dropped
// with the store's (expire), and a filter that fills up gets a fresh one beside it, so the false
// positive rate stays near 1% however many events a day has.
type dayFilters struct {
	mu   sync.RWMutex
	days map[uint32][]*bloomFilter
}

// bloomCap events per filter at bloomBitsPerEvent bits and bloomHashes probes: about 1% false
// positives when full, 80 KiB each.
const (
	bloomCap          = 1 << 16
	bloomBitsPerEvent = 10
	bloomHashes       = 7
)

type bloomFilter struct {
	bits []uint64
	n    int
}

var filterSeed = maphash.MakeSeed()

func (f *dayFilters) add(d uint32, id string) {
	h := maphash.String(filterSeed, id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.days == nil {
		f.days = map[uint32][]*bloomFilter{}
	}
	bs := f.days[d]
	if len(bs) == 0 || bs[len(bs)-1].n >= bloomCap {
		bs = append(bs, &bloomFilter{bits: make([]uint64, bloomCap*bloomBitsPerEvent/64)})
		f.days[d] = bs
	}
	b := bs[len(bs)-1]
	m := uint64(len(b.bits) * 64)
	h1, h2 := h, h>>32|h<<32|1
	for i := range uint64(bloomHashes) {
		bit := (h1 + i*h2) % m
		b.bits[bit/64] |= 1 << (bit % 64)
	}
	b.n++
}

// mayHold reports whether the store may hold id for day d (false: it surely does not).
func (f *dayFilters) mayHold(d uint32, id string) bool {
	h := maphash.String(filterSeed, id)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, b := range f.days[d] {
		m := uint64(len(b.bits) * 64)
		h1, h2 := h, h>>32|h<<32|1
		hit := true
		for i := range uint64(bloomHashes) {
			bit := (h1 + i*h2) % m
			if b.bits[bit/64]&(1<<(bit%64)) == 0 {
				hit = false
				break
			}
		}
		if hit {
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
