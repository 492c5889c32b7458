package signals

import "strings"

// bitWriter builds GPP bit strings for tests that need one IAB's encoder cannot write (a header
// naming an id IAB has not defined, a value its validators refuse).
type bitWriter struct{ bits []byte }

func (w *bitWriter) int(v, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, byte(v>>i&1))
	}
}

// fib writes v (>= 1) as a Fibonacci code: Zeckendorf bits, lowest term first, then a 1.
func (w *bitWriter) fib(v int) {
	n := 0
	for n < len(fibTerms) && fibTerms[n] <= v {
		n++
	}
	code := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		if fibTerms[i] <= v {
			code[i], v = 1, v-fibTerms[i]
		}
	}
	w.bits = append(append(w.bits, code...), 1)
}

func (w *bitWriter) String() string {
	var sb strings.Builder
	for i := 0; i < len(w.bits); i += 6 {
		v := 0
		for j := i; j < i+6; j++ {
			v <<= 1
			if j < len(w.bits) {
				v |= int(w.bits[j])
			}
		}
		sb.WriteByte(base64url[v])
	}
	return sb.String()
}

// encodeHeader writes a GPP header (type 3, version 1) naming ids (increasing).
func encodeHeader(ids []int) string {
	var groups [][2]int
	for _, id := range ids {
		if n := len(groups); n > 0 && groups[n-1][1] == id-1 {
			groups[n-1][1] = id
		} else {
			groups = append(groups, [2]int{id, id})
		}
	}
	w := &bitWriter{}
	w.int(3, 6)
	w.int(1, 6)
	w.int(len(groups), 12)
	last := 0
	for _, g := range groups {
		if g[0] == g[1] {
			w.int(0, 1)
			w.fib(g[0] - last)
		} else {
			w.int(1, 1)
			w.fib(g[0] - last)
			w.fib(g[1] - g[0])
		}
		last = g[1]
	}
	return w.String()
}
