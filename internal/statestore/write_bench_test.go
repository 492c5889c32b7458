package statestore

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// randUser and randID are the i-th event's user and id spread over the key space, as random
// user keys and UUID event ids are (sequential ones would all land after every stored table).
func randUser(i, users int) string { return fmt.Sprintf("user-%09d", mix(uint64(i))%uint64(users)) }
func randID(i int) string {
	h := mix(uint64(i) + 1<<40)
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(h), uint16(h>>32), uint16(h>>48)&0xfff, uint16(mix(h)), mix(h+1)&0xffffffffffff)
}

// mix is splitmix64's finaliser: a cheap bijection that scatters consecutive integers.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// BenchmarkSeenWhileWriting is the dedup check as the processor runs it while it drains a
// backlog: STATEBENCH_PARTS partition stores (default 6, the bench's partitions) in one process,
// every lookup a new id (a miss), and the ids looked up committed in batches of 5,000 by another
// goroutine, so the stores keep flushing and compacting under the lookups. The stores start
// with benchIDs ids in all, written the same way (not compacted by hand).
func BenchmarkSeenWhileWriting(b *testing.B) {
	n := benchIDs(b)
	parts := 6
	if v := os.Getenv("STATEBENCH_PARTS"); v != "" {
		var err error
		if parts, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	users := max(n/5, 1)
	stores := make([]*Store, parts)
	for p := range stores {
		s, err := Open(b.TempDir(), 7*24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores[p] = s
	}
	now := time.Now().UnixMilli()
	const batchIDs = 5_000
	// Event i belongs to partition i%parts; a write is the range [from, to) of one partition's events.
	commit := func(p, from, to int) {
		batch := stores[p].NewBatch()
		for i := from; i < to; i += parts {
			batch.PutSeen(IDOf(randUser(i, users), randID(i)), Seen{FirstMs: now, LastMs: now})
		}
		if err := batch.Commit(); err != nil {
			b.Error(err)
		}
	}
	span := batchIDs * parts
	for i := 0; i < n; i += span {
		for p := range parts {
			commit(p, i+p, min(i+span, n))
		}
	}
	type write struct{ p, from, to int }
	writes := make(chan write, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w := range writes {
			commit(w.p, w.from, w.to)
		}
	}()
	before := stats(stores)
	next, from := n, n
	for b.Loop() {
		if _, ok, err := stores[next%parts].Seen(IDOf(randUser(next, users), randID(next)), now); err != nil || ok {
			b.Fatal("unexpected hit", err)
		}
		next++
		if next-from == span {
			for p := range parts {
				writes <- write{p, from + (p-from%parts+parts)%parts, next}
			}
			from = next
		}
	}
	close(writes)
	<-done
	after := stats(stores)
	ops := float64(next - n)
	b.ReportMetric(float64(after.hits-before.hits)/ops, "cachehit/op")
	b.ReportMetric(float64(after.misses-before.misses)/ops, "cachemiss/op")
	b.ReportMetric(float64(after.filtered-before.filtered)/ops, "filtered/op")
	if testing.Verbose() {
		m := stores[0].db.Metrics()
		b.Logf("N=%d; cache %d bytes in %d blocks; store 0:\n%s", next-n, m.BlockCache.Size, m.BlockCache.Count, m.String())
	}
}

type storeStats struct{ hits, misses, filtered int64 }

// stats sums the stores' block cache and filter counters (a shared cache counts in each).
func stats(stores []*Store) storeStats {
	var s storeStats
	for _, st := range stores {
		m := st.db.Metrics()
		s.filtered += m.Filter.Hits
		s.hits, s.misses = m.BlockCache.Hits, m.BlockCache.Misses
	}
	return s
}
