package statestore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchIDs is how many ids the benchmark store holds: STATEBENCH_IDS, default 1,000,000
// (statebench measures 50,000,000).
func benchIDs(b *testing.B) int {
	if v := os.Getenv("STATEBENCH_IDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// benchStore fills a store with n ids of n/5 users spread over a week, as a restore leaves it,
// and compacts it, as a long-running store is.
func benchStore(b *testing.B, n int) (*Store, int64) {
	s, err := Open(b.TempDir(), 7*24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	week := (7 * 24 * time.Hour).Milliseconds()
	batch := s.NewBatch()
	for i := range n {
		first := now - int64(i)*week/int64(n)
		batch.PutSeen(IDOf(benchUser(i), benchID(i)), Seen{FirstMs: first, LastMs: first})
		if batch.Len() >= 20_000 {
			if err := batch.Commit(); err != nil {
				b.Fatal(err)
			}
			batch = s.NewBatch()
		}
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	return s, now
}

func benchUser(i int) string { return fmt.Sprintf("user-%09d", i/5) }
func benchID(i int) string   { return fmt.Sprintf("evt-%011d-5d1c-4c1e", i) }

// BenchmarkSeen is the dedup check's cost per event: a new event (miss, the common case) and a
// resend (hit), on a store of benchIDs ids.
func BenchmarkSeen(b *testing.B) {
	n := benchIDs(b)
	s, now := benchStore(b, n)
	defer s.Close()
	keys := make([][2]string, 1<<16)
	b.Run("miss", func(b *testing.B) {
		for i := range keys {
			keys[i] = [2]string{benchUser(i * 7919 % n), benchID(n + i)}
		}
		before := s.db.Metrics().Filter
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			k := keys[i&(len(keys)-1)]
			if _, ok, err := s.Seen(IDOf(k[0], k[1]), now); err != nil || ok {
				b.Fatal("unexpected hit", err)
			}
		}
		after := s.db.Metrics().Filter
		b.ReportMetric(float64(after.Hits-before.Hits)/float64(b.N), "filtered/op")
	})
	b.Run("hit", func(b *testing.B) {
		for i := range keys {
			j := i * 7919 % n
			keys[i] = [2]string{benchUser(j), benchID(j)}
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			k := keys[i&(len(keys)-1)]
			if _, ok, err := s.Seen(IDOf(k[0], k[1]), now); err != nil || !ok {
				b.Fatal("unexpected miss", err)
			}
		}
	})
}
