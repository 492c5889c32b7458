package enforce

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// BenchmarkHoldMillion measures what held events cost: it holds 1,000,000 events (five per user,
// 200,000 users, one partition, in polls of 5,000) and reports the heap the index keeps and the
// store's bytes on disk, per held event, after a checkpoint. Run it once:
//
//	go test -run '^$' -bench HoldMillion -benchtime 1x ./processors/enforce/
func BenchmarkHoldMillion(b *testing.B) {
	const users, perUser, poll = 200_000, 5, 5000
	for range b.N {
		p := newTestProcessor(b, 1)
		p.cfg.Policy.Hold = &policy.Hold{Window: time.Hour, MaxEventsPerUser: 100}
		ev := schemas.Event{Event: "page_view", Jurisdiction: "EU", TimestampMs: 1,
			Context:    map[string]string{"page_url": `"https://shop.example/products/shoes?utm_source=news"`, "user_agent": `"Mozilla/5.0 (X11; Linux x86_64)"`},
			Properties: map[string]string{"session_id": `"s-0123456789"`}}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		offset := int64(0)
		for start := 0; start < users*perUser; start += poll {
			batch := p.state.begin()
			p.tally.reset()
			for i := start; i < start+poll; i++ {
				ev.UserID, ev.EventID = fmt.Sprintf("user-%06d", i%users), fmt.Sprintf("ev-%07d", i)
				r := &kgo.Record{Partition: 0, Offset: offset, Value: schemas.Events.MustEncode(&ev)}
				offset++
				if _, err := p.handle(r, batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.state.commit(batch); err != nil {
				b.Fatal(err)
			}
			p.release(batch)
		}
		if held := p.state.holds.held(); held != users*perUser {
			b.Fatalf("held %d", held)
		}
		if err := p.state.store(0).Checkpoint(); err != nil {
			b.Fatal(err)
		}
		debug.FreeOSMemory()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(users*perUser), "heap-B/held")
		b.ReportMetric(float64(dirSize(b, p.state.partDir(0)))/float64(users*perUser), "disk-B/held")
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkLateChoice is the processor's work per event for traffic behind an opt-in banner, as
// `make bench -late-choice` sends it: each poll brings 500 fresh users' first events without a
// choice and the previous poll's users' next events with their grant. Sub-benchmarks with the
// hold off (blocked at once), on (held, then released by the grant), queued (on, with the
// lookahead a poll ahead: the grants are queued when the first events are decided, as behind a
// backlog; its reading counted in the CPU time), and choice-first: the first events carry the
// grant already, so they are decided as the hold run decides them, with nothing held (what
// holding itself costs is hold=true against it). b.N counts events.
func BenchmarkLateChoice(b *testing.B) {
	for _, mode := range []string{"hold=false", "hold=true", "queued", "choice-first"} {
		hold, queued, choiceFirst := mode == "hold=true" || mode == "queued", mode == "queued", mode == "choice-first"
		b.Run(mode, func(b *testing.B) {
			const users = 500
			p := newTestProcessor(b, 1)
			if hold {
				p.cfg.Policy.Hold = &policy.Hold{Window: time.Hour, MaxEventsPerUser: 100}
			}
			if queued {
				p.ahead.choices = newChoicesAhead(p.cfg.Policy)
			}
			ahead := func(recs []*kgo.Record) {
				for _, r := range recs {
					p.ahead.observe(r)
				}
			}
			ev := schemas.Event{Event: "page_view", Jurisdiction: "EU", TimestampMs: 1,
				Context:    map[string]string{"page_url": `"https://shop.example/products/shoes"`, "user_agent": `"Mozilla/5.0"`},
				Properties: map[string]string{"order_value": "12.5", "currency": `"EUR"`, "email": `"a@example.com"`}}
			grant := map[string]bool{"analytics": true, "marketing": true}
			offset := int64(0)
			record := func(user, poll int, answer bool, choice map[string]bool) *kgo.Record {
				ev.UserID, ev.EventID, ev.Consent = fmt.Sprintf("user-%d-%d", poll, user), fmt.Sprintf("ev-%d-%d-%t", poll, user, answer), choice
				offset++
				return &kgo.Record{Partition: 0, Offset: offset, Value: schemas.Events.MustEncode(&ev)}
			}
			// The records are made first, so the CPU time counts the processor's work alone
			// (with its store's compactions, which run beside it).
			var polls [][]*kgo.Record
			for poll, done := 0, 0; done < b.N; poll, done = poll+1, done+2*users {
				recs := make([]*kgo.Record, 0, 2*users)
				for u := range users {
					first := map[string]bool(nil)
					if choiceFirst {
						first = grant
					}
					recs = append(recs, record(u, poll, false, first))
					if poll > 0 {
						recs = append(recs, record(u, poll-1, true, grant))
					}
				}
				polls = append(polls, recs)
			}
			b.ResetTimer()
			cpu0 := testenv.CPUTime()
			ahead(polls[0])
			for i, recs := range polls {
				if i+1 < len(polls) {
					ahead(polls[i+1])
				}
				batch := p.state.begin()
				p.tally.reset()
				for _, r := range recs {
					if _, err := p.handle(r, batch); err != nil {
						b.Fatal(err)
					}
				}
				batch.heldChangelog("held")
				if err := p.state.commit(batch); err != nil {
					b.Fatal(err)
				}
				p.release(batch)
				p.ahead.passed(0, recs[len(recs)-1].Offset)
			}
			// CPU time, not wall time: on a shared machine the wall clock also counts other work.
			b.ReportMetric(float64(testenv.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(p.state.holds.held()), "held-at-end")
			// What the store's compactions rewrote, per event: short-lived keys (held events
			// released a poll later) cost here, not in the processor's own functions.
			m := p.state.store(0).Metrics()
			b.ReportMetric(float64(m.Total().TableBytesCompacted)/float64(b.N), "compacted-B/op")
			b.ReportMetric(float64(m.Flush.Count), "flushes")
		})
	}
}
