package signals

import (
	"errors"
	"strings"
)

// The one bit reader behind every GPP section tollgate decodes: a segment is base64url text
// (no padding characters), read most significant bit first, in fixed-width integers, Fibonacci
// codes and the ranges built from them (IAB GPP specification, "Data types").

const base64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

var (
	errShort  = errors.New("ends before its last field")
	errBase64 = errors.New("not base64url")
	errFib    = errors.New("Fibonacci code out of range")
)

// bitReader reads one segment. Every read checks the length, so a truncated or hostile segment
// is an error, never a panic or a long loop.
type bitReader struct {
	seg string
	pos int // next bit
}

func newBitReader(seg string) (*bitReader, error) {
	for i := 0; i < len(seg); i++ {
		if strings.IndexByte(base64url, seg[i]) < 0 {
			return nil, errBase64
		}
	}
	return &bitReader{seg: seg}, nil
}

// left is the number of bits not read yet (padding included).
func (r *bitReader) left() int { return len(r.seg)*6 - r.pos }

func (r *bitReader) bit() int {
	v := strings.IndexByte(base64url, r.seg[r.pos/6])
	b := v >> (5 - r.pos%6) & 1
	r.pos++
	return b
}

// int reads an n-bit unsigned integer (n <= 36, the widest GPP field: a datetime).
func (r *bitReader) int(n int) (int, error) {
	if n > r.left() {
		return 0, errShort
	}
	v := 0
	for i := 0; i < n; i++ {
		v = v<<1 | r.bit()
	}
	return v, nil
}

// fibTerms are the Fibonacci numbers a code's bits stand for (1, 2, 3, 5, ...). 24 terms reach
// past 65535, the largest id any GPP range holds; a longer code is refused (a hostile string
// could otherwise ask for an unbounded one).
var fibTerms = func() [24]int {
	var f [24]int
	f[0], f[1] = 1, 2
	for i := 2; i < len(f); i++ {
		f[i] = f[i-1] + f[i-2]
	}
	return f
}()

// fib reads a Fibonacci code: the bits of a Zeckendorf sum, lowest term first, ended by the
// second of two consecutive 1 bits.
func (r *bitReader) fib() (int, error) {
	v, prev := 0, 0
	for i := 0; ; i++ {
		if r.left() == 0 {
			return 0, errShort
		}
		b := r.bit()
		if b == 1 && prev == 1 {
			return v, nil
		}
		if i >= len(fibTerms) {
			return 0, errFib
		}
		v += b * fibTerms[i]
		prev = b
	}
}

// idRange is an inclusive range of ids (vendors, sections).
type idRange struct{ lo, hi int }

// idSet is a set of ids kept as ranges: a range of every vendor costs one entry, not 65535.
type idSet []idRange

func (s idSet) has(id int) bool {
	for _, r := range s {
		if id >= r.lo && id <= r.hi {
			return true
		}
	}
	return false
}

// fibRange reads a Fibonacci integer range: a 12-bit count, then per entry a range bit and one
// (single id) or two (first and last id) Fibonacci codes, each an offset from the last id read.
func (r *bitReader) fibRange() (idSet, error) {
	n, err := r.int(12)
	if err != nil {
		return nil, err
	}
	var out idSet
	last := 0
	for i := 0; i < n; i++ {
		isRange, err := r.int(1)
		if err != nil {
			return nil, err
		}
		d, err := r.fib()
		if err != nil {
			return nil, err
		}
		lo := last + d
		hi := lo
		if isRange == 1 {
			if d, err = r.fib(); err != nil {
				return nil, err
			}
			hi = lo + d
		}
		if hi > 0xffff {
			return nil, errFib
		}
		out = append(out, idRange{lo, hi})
		last = hi
	}
	return out, nil
}

// fixedRange reads the older fixed integer range: a 12-bit count, then per entry a range bit and
// one or two 16-bit ids.
func (r *bitReader) fixedRange() (idSet, error) {
	n, err := r.int(12)
	if err != nil {
		return nil, err
	}
	var out idSet
	for i := 0; i < n; i++ {
		isRange, err := r.int(1)
		if err != nil {
			return nil, err
		}
		lo, err := r.int(16)
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange == 1 {
			if hi, err = r.int(16); err != nil {
				return nil, err
			}
		}
		out = append(out, idRange{lo, hi})
	}
	return out, nil
}

// optimizedRange reads a 16-bit largest id, a type bit, then either a range (1: Fibonacci, or
// fixed when fixed is set) or a bitfield of that many bits (0: bit i is id i+1).
func (r *bitReader) optimizedRange(fixed bool) (idSet, error) {
	max, err := r.int(16)
	if err != nil {
		return nil, err
	}
	isRange, err := r.int(1)
	if err != nil {
		return nil, err
	}
	if isRange == 1 {
		if fixed {
			return r.fixedRange()
		}
		return r.fibRange()
	}
	if max > r.left() {
		return nil, errShort
	}
	var out idSet
	for id := 1; id <= max; id++ {
		if r.bit() == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].hi == id-1 {
			out[n-1].hi = id
		} else {
			out = append(out, idRange{id, id})
		}
	}
	return out, nil
}

// rest reports whether what is left of the segment is padding: fewer than 24 bits (IAB's
// encoder pads to a byte, then to a base64 character: at most 11), all zero.
func (r *bitReader) rest() bool {
	if r.left() >= 24 {
		return false
	}
	for r.left() > 0 {
		if r.bit() != 0 {
			return false
		}
	}
	return true
}
