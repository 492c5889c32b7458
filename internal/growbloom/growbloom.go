// Package growbloom is a set of 64-bit hashes in memory that answers "surely not" or "maybe",
// for a number of members not known in advance: blocked Bloom filters (blobloom: one cache line
// per lookup), and when the last is full a new one twice as large beside it. The false positive
// rate stays near the one asked whatever the count, and a lookup asks about log2(n/first)
// filters, not n/first. The processor's id store (a filter per day of first sightings) and the
// sinks' delivery ledger (a filter per decision day) both keep their days in these.
//
// A Filter is not safe for concurrent use: its owner locks.
package growbloom

import "github.com/greatroar/blobloom"

// Part is one of a Filter's Bloom filters; its owner may save and load it (blobloom.Dump and
// NewLoader) with N and Capacity beside it.
type Part struct {
	Bloom       *blobloom.Filter
	N, Capacity uint64 // members added, members it was sized for
}

// NewPart returns an empty part sized for capacity members at fpRate false positives when full.
func NewPart(capacity uint64, fpRate float64) *Part {
	capacity = max(capacity, 1)
	return &Part{Bloom: blobloom.NewOptimized(blobloom.Config{Capacity: capacity, FPRate: fpRate}), Capacity: capacity}
}

// Add adds h to the part, whatever its fill (a part sized for a known count).
func (p *Part) Add(h uint64) {
	p.Bloom.Add(h)
	p.N++
}

// Filter is the parts of one set; the last takes new members.
type Filter struct {
	parts  []*Part
	fpRate float64
}

// New returns an empty filter whose first part is sized for capacity members.
func New(capacity uint64, fpRate float64) *Filter {
	return &Filter{parts: []*Part{NewPart(capacity, fpRate)}, fpRate: fpRate}
}

// FromParts returns the filter of parts (loaded, or rebuilt as one); new members grow it at
// fpRate.
func FromParts(fpRate float64, parts ...*Part) *Filter {
	if len(parts) == 0 {
		return New(firstCapacity, fpRate)
	}
	return &Filter{parts: parts, fpRate: fpRate}
}

// firstCapacity sizes the first part of a filter made of no parts.
const firstCapacity = 1 << 16

// Add adds h, starting a part twice the size of the last when that one is full.
func (f *Filter) Add(h uint64) {
	last := f.parts[len(f.parts)-1]
	if last.N >= last.Capacity {
		last = NewPart(2*last.Capacity, f.fpRate)
		f.parts = append(f.parts, last)
	}
	last.Add(h)
}

// Has reports whether h may be a member (false: it surely is not).
func (f *Filter) Has(h uint64) bool {
	for _, p := range f.parts {
		if p.Bloom.Has(h) {
			return true
		}
	}
	return false
}

// N is the number of members added.
func (f *Filter) N() uint64 {
	var n uint64
	for _, p := range f.parts {
		n += p.N
	}
	return n
}

// Parts are the filter's parts, oldest first (to save them; do not change them).
func (f *Filter) Parts() []*Part { return f.parts }
