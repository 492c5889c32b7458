// Command statebench measures the consent processor's state store at scale: it writes USERS
// users' consent and IDS remembered event ids through the same batches a cold restore applies
// (changelog records in 10,000-record batches with the offset beside them) and checkpoints it, as
// the processor does after a restore, then reopens the store as a warm restart does, and times
// dedup checks on the full store: resends of ids from
// anywhere in the window, new ids, and resends of ids first seen within the hour (an SDK's
// retry), by the wall clock and by CPU time. It reports the process's peak and current RSS: it
// must not grow with users; ids cost their filters' ~1.6 bytes each.
//
//	go run ./internal/statestore/statebench -users 10000000 -ids 50000000 -dir /tmp/statebench
//
// The Kafka side of a restore (reading the changelog) is not included: see the closing figures
// of the e2e restore test for its rate.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/schemas"
)

func main() {
	users := flag.Int("users", 1_000_000, "users with a recorded consent")
	ids := flag.Int("ids", 5_000_000, "remembered event ids")
	dir := flag.String("dir", "", "store folder (default: a new temporary one, removed at the end)")
	checks := flag.Int("checks", 1_000_000, "dedup checks timed")
	profile := flag.String("cpuprofile", "", "write CPU profiles of the dedup checks: FILE.resend, FILE.new and FILE.fresh")
	flag.Parse()
	if err := run(*users, *ids, *checks, *dir, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "statebench:", err)
		os.Exit(1)
	}
}

const window = 7 * 24 * time.Hour

func run(users, ids, checks int, dir, profile string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "statebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	now := time.Now().UnixMilli()
	st, err := statestore.Open(dir, window)
	if err != nil {
		return err
	}
	consent, err := schemas.ConsentUpdates.Encode(&schemas.ConsentUpdate{UserKey: "u", Consent: map[string]bool{"analytics": true, "marketing": false},
		TimestampMs: now, NoticeVersion: "v3"})
	if err != nil {
		return err
	}
	start := time.Now()
	b := st.NewBatch()
	var off int64
	flush := func(topic string, force bool) error {
		if b.Len() < 10_000 && !force {
			return nil
		}
		b.SetOffset(topic, off)
		if err := b.Commit(); err != nil {
			return err
		}
		b = st.NewBatch()
		return nil
	}
	for i := range users {
		b.PutConsent(userKey(i), consent)
		off++
		if err := flush("consent.state", false); err != nil {
			return err
		}
	}
	if err := flush("consent.state", true); err != nil {
		return err
	}
	consentTook := time.Since(start)
	// Ids spread over the window's days, as a week of traffic leaves them.
	span := window.Milliseconds()
	for i := range ids {
		first := now - int64(i)*span/int64(max(ids, 1))
		b.PutSeen(statestore.IDOf(userKey(i%max(users, 1)), eventID(i)), statestore.Seen{FirstMs: first, LastMs: first})
		off++
		if err := flush("dedup.ids", false); err != nil {
			return err
		}
	}
	if err := flush("dedup.ids", true); err != nil {
		return err
	}
	// The processor checkpoints each store once its restore is read (enforce/restore.go): the
	// filters saved and the memtables flushed, so a crash from here on reads only the tail.
	if err := st.Checkpoint(); err != nil {
		return err
	}
	cold := time.Since(start)
	fmt.Printf("cold restore (store side): %d consent records in %s, %d ids in %s, total %s (%.0f records/s)\n",
		users, consentTook.Round(time.Millisecond), ids, (cold - consentTook).Round(time.Millisecond), cold.Round(time.Millisecond),
		float64(users+ids)/cold.Seconds())
	fmt.Printf("rss after load: %s\n", rss())
	if err := st.Close(); err != nil {
		return err
	}

	start = time.Now()
	if st, err = statestore.Open(dir, window); err != nil {
		return err
	}
	if _, _, err := st.Offset("dedup.ids"); err != nil {
		return err
	}
	fmt.Printf("warm restart: store reopened and offsets read in %s (then only the changelog tail is read)\n", time.Since(start).Round(time.Millisecond))
	defer st.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	seen := func(user, id int) (bool, error) {
		_, ok, err := st.Seen(statestore.IDOf(userKey(user%max(users, 1)), eventID(id)), now)
		return ok, err
	}
	suffixed := func(phase string) string {
		if profile == "" {
			return ""
		}
		return profile + "." + phase
	}
	hit, err := timeChecks(st, suffixed("resend"), checks, func() (bool, error) { i := rng.IntN(max(ids, 1)); return seen(i, i) })
	if err != nil {
		return err
	}
	miss, err := timeChecks(st, suffixed("new"), checks, func() (bool, error) { i := rng.IntN(max(users, 1)); return seen(i, ids+i) })
	if err != nil {
		return err
	}
	// Most resends are an SDK's retry seconds after the first copy: an hour of new ids is
	// written as the processor commits them (5,000 a batch), then resent at random.
	recent := max(ids/168, 1)
	b = st.NewBatch()
	for i := range recent {
		b.PutSeen(statestore.IDOf(userKey((ids+users+i)%max(users, 1)), eventID(ids+users+i)), statestore.Seen{FirstMs: now, LastMs: now})
		if b.Len() == 5_000 || i == recent-1 {
			off++
			b.SetOffset("dedup.ids", off)
			if err := b.Commit(); err != nil {
				return err
			}
			b = st.NewBatch()
		}
	}
	b.Discard()
	fresh, err := timeChecks(st, suffixed("fresh"), checks, func() (bool, error) { i := ids + users + rng.IntN(recent); return seen(i, i) })
	if err != nil {
		return err
	}
	fmt.Printf("dedup check: resend (hit) %s/op (%d of %d found), new event (miss) %s/op (%d found), resend within the hour %s/op (%d found)\n",
		hit.wall, hit.found, checks, miss.wall, miss.found, fresh.wall, fresh.found)
	// On a shared machine the wall clock also counts the time other processes had the cores.
	fmt.Printf("dedup check, CPU time of the process: resend %s/op, new event %s/op, resend within the hour %s/op\n", hit.cpu, miss.cpu, fresh.cpu)
	fmt.Printf("dedup check, block cache misses per check: resend %.2f, new event %.2f, resend within the hour %.2f\n", hit.misses, miss.misses, fresh.misses)
	fmt.Printf("rss at end: %s\n", rss())
	m := st.Metrics()
	fmt.Printf("pebble: block cache %d MB in use, tables per level %v\n", m.BlockCache.Size>>20, tablesPerLevel(m))
	return nil
}

type timing struct {
	wall, cpu time.Duration // per check
	found     int
	misses    float64 // block cache misses per check
}

// timeChecks runs check n times and times it, by the wall clock and by the process's CPU time.
func timeChecks(st *statestore.Store, profile string, n int, check func() (bool, error)) (timing, error) {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return timing{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return timing{}, err
		}
		defer pprof.StopCPUProfile()
	}
	misses := st.Metrics().BlockCache.Misses
	start, cpu := time.Now(), cpuTime()
	t := timing{}
	for range n {
		ok, err := check()
		if err != nil {
			return t, err
		}
		if ok {
			t.found++
		}
	}
	t.wall, t.cpu = time.Since(start)/time.Duration(n), (cpuTime()-cpu)/time.Duration(n)
	t.misses = float64(st.Metrics().BlockCache.Misses-misses) / float64(n)
	return t, nil
}

func userKey(i int) string { return fmt.Sprintf("user-%09d", i) }
func eventID(i int) string { return fmt.Sprintf("evt-%011d-5d1c-4c1e", i) }

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is the process's current and peak resident set, from /proc.
func rss() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	out = append(out, fmt.Sprintf("Go heap in use %d kB (of which the Go runtime holds %d kB from the OS)", m.HeapInuse>>10, m.Sys>>10))
	return strings.Join(out, ", ")
}

func tablesPerLevel(m *pebble.Metrics) []int64 {
	out := make([]int64, len(m.Levels))
	for i, l := range m.Levels {
		out[i] = l.TablesCount
	}
	return out
}
