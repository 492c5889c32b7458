package delivery

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// BenchmarkLedgerCheckWhileWriting is the ledger check as a sink runs it while it drains a
// backlog: every event checked is new (not delivered), and the checked events are stored in
// batches of 5,000 by another goroutine, as the ledger's follower and writer do, so the store
// keeps flushing and compacting under the checks. The store starts with LEDGERBENCH_ENTRIES
// entries (default 1,000,000) written the same way.
func BenchmarkLedgerCheckWhileWriting(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("LEDGERBENCH_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	l := benchLedger(b)
	db := l.db
	decided := time.Now().UnixMilli()
	ev := func(i int) schemas.FilteredEvent {
		return schemas.FilteredEvent{EventID: benchEventID(i), DecidedMs: decided}
	}
	const batch = 5_000
	store := func(from, to int) {
		entries := make([]schemas.LedgerEntry, 0, to-from)
		for i := from; i < to; i++ {
			entries = append(entries, schemas.LedgerEntry{EventID: benchEventID(i), DecidedMs: decided, DeliveredMs: decided, Attempt: 1})
		}
		l.remember(entries)
	}
	for i := 0; i < n; i += batch {
		store(i, min(i+batch, n))
	}
	writes := make(chan [2]int, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w := range writes {
			store(w[0], w[1])
		}
	}()
	before := db.Metrics()
	next, from := n, n
	for b.Loop() {
		e := ev(next)
		if l.delivered(&e) {
			b.Fatal("a new event counted as delivered")
		}
		next++
		if next-from == batch {
			writes <- [2]int{from, next}
			from = next
		}
	}
	close(writes)
	<-done
	after := db.Metrics()
	ops := float64(next - n)
	b.ReportMetric(float64(after.BlockCache.Hits-before.BlockCache.Hits)/ops, "cachehit/op")
	b.ReportMetric(float64(after.BlockCache.Misses-before.BlockCache.Misses)/ops, "cachemiss/op")
	if testing.Verbose() {
		b.Logf("N=%d\n%s", next-n, after.String())
	}
}

// benchEventID is the i-th event's id, a UUID-shaped string spread over the key space as
// random ids are.
func benchEventID(i int) string {
	h := splitmix(uint64(i) + 1<<40)
	g := splitmix(h)
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(h), uint16(h>>32), uint16(h>>48)&0xfff, uint16(g), g>>16)
}

// splitmix is splitmix64's finaliser: a cheap bijection that scatters consecutive integers.
func splitmix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// BenchmarkLedgerRemember is the ledger store's write path as a draining sink runs it: b.N new
// events' entries remembered in batches of 1,000 (a request's), then the flushes and compactions
// they caused run to their end, so cpu-ns/op counts all the store's work for one entry.
func BenchmarkLedgerRemember(b *testing.B) {
	l := benchLedger(b)
	db := l.db
	decided := time.Now().UnixMilli()
	const batch = 1_000
	entries := make([]schemas.LedgerEntry, 0, batch)
	cpu0 := testenv.CPUTime()
	i := 0
	for b.Loop() {
		entries = append(entries, schemas.LedgerEntry{EventID: benchEventID(i), DecidedMs: decided, DeliveredMs: decided, Attempt: 1})
		if i++; len(entries) == batch {
			l.remember(entries)
			entries = entries[:0]
		}
	}
	l.remember(entries)
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	for db.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(10 * time.Millisecond) // a benchmark's wait for background work; no test asserts on it
	}
	b.ReportMetric(float64(testenv.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
	m := db.Metrics()
	b.ReportMetric(float64(m.Total().TableBytesCompacted+m.Total().TableBytesFlushed)/float64(b.N), "written-B/op")
	if testing.Verbose() {
		b.Logf("N=%d\n%s", b.N, m.String())
	}
}

// benchLedger is a ledger store in a temporary folder, closed when b ends.
func benchLedger(b *testing.B) *ledgerStore {
	l := &ledgerStore{log: zap.NewNop()}
	db, err := openStore(b.TempDir(), &l.bottom)
	if err != nil {
		b.Fatal(err)
	}
	l.db = db
	b.Cleanup(func() { _ = db.Close() })
	return l
}
