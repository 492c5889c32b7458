package statestore

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// BenchmarkIDOf is the id's hash per event (xxh3-128), beside SHA-256 cut to 128 bits, the
// collision-resistant choice measured against it.
func BenchmarkIDOf(b *testing.B) {
	user, id := "user-000001234", "evt-00000012345-5d1c-4c1e-8a3b-22c1f0e1d2c3"
	b.Run("xxh3-128", func(b *testing.B) {
		for b.Loop() {
			_ = IDOf(user, id)
		}
	})
	b.Run("sha256-128", func(b *testing.B) {
		for b.Loop() {
			var buf [128]byte
			p := binary.AppendUvarint(buf[:0], uint64(len(user)))
			sum := sha256.Sum256(append(append(p, user...), id...))
			var out ID
			copy(out[:], sum[:16])
			_ = out
		}
	})
}
