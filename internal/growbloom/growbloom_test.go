package growbloom

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGrowsByDoublingAndKeepsItsRate(t *testing.T) {
	const n, fp = 100_000, 0.01
	f := New(1000, fp)
	rng := rand.New(rand.NewPCG(1, 2))
	members := make([]uint64, n)
	for i := range members {
		members[i] = rng.Uint64()
		f.Add(members[i])
	}
	for _, h := range members {
		require.True(t, f.Has(h), "no false negatives")
	}
	require.Equal(t, uint64(n), f.N())
	// 1000 + 2000 + ... : 7 parts hold 127,000; one filter per 1000 members would be 100.
	require.Len(t, f.Parts(), 7)
	passed := 0
	for range n {
		if f.Has(rng.Uint64()) {
			passed++
		}
	}
	// Each part is at most full at fp; a non-member passes any of them: at most parts × fp.
	require.Less(t, float64(passed)/n, 7*fp)
}

func TestFromPartsGrowsAtItsRate(t *testing.T) {
	p := NewPart(2, 0.01)
	p.Add(1)
	p.Add(2)
	f := FromParts(0.01, p)
	f.Add(3)
	require.Len(t, f.Parts(), 2)
	require.Equal(t, uint64(4), f.Parts()[1].Capacity)
	require.True(t, f.Has(1) && f.Has(3))
}
