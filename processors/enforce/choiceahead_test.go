package enforce

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// queuedProcessor is holdProcessor whose lookahead notes queued choices, and the function that
// shows it records as the lookahead reads them (ahead of the processor).
func queuedProcessor(t *testing.T) (*Processor, *time.Time, func(...*kgo.Record)) {
	p, clock := holdProcessor(t)
	p.ahead.choices = newChoicesAhead(p.cfg.Policy)
	require.NotNil(t, p.ahead.choices)
	return p, clock, func(recs ...*kgo.Record) {
		for _, r := range recs {
			p.ahead.observe(r)
		}
	}
}

// holdEventAt is holdEvent received by ingest at receivedMs.
func holdEventAt(t *testing.T, user, id string, choice map[string]bool, receivedMs int64) *kgo.Record {
	t.Helper()
	ev := &schemas.Event{EventID: id, Event: "page", UserID: user, Jurisdiction: "EU", Consent: choice, TimestampMs: 1, ReceivedMs: receivedMs,
		Context: map[string]string{"page_url": `"https://shop.example/"`}, Properties: map[string]string{"email": `"a@example.com"`}}
	holdOffset++
	return &kgo.Record{Topic: "t.events.raw", Partition: 0, Offset: holdOffset, Key: []byte(user), Value: schemas.Events.MustEncode(ev)}
}

var grantAll = map[string]bool{"analytics": true, "marketing": true}

// decisionKey is what must agree between a held-and-released decision and a queued one.
type decisionKey struct {
	event, dest, outcome, reason, source, sent string
	held                                       bool
}

func keysOf(ds []schemas.Decision) map[decisionKey]int {
	out := map[decisionKey]int{}
	for _, d := range ds {
		out[decisionKey{d.EventID, d.Destination, d.Outcome, d.Reason, d.ConsentSource, strings.Join(d.FieldsSent, ","), d.HeldMs > 0}]++
	}
	return out
}

func eventIDs(ds []schemas.Decision) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.EventID)
	}
	return ids
}

// The shortcut decides exactly what holding and releasing decides: the same decisions (held_ms
// > 0 for the destinations that waited) and the same order at every destination, for a grant, a
// partial grant and a refusal; it holds nothing and writes no held-events changelog.
func TestQueuedChoiceDecidesAsTheHold(t *testing.T) {
	for name, choice := range map[string]map[string]bool{
		"grant":          grantAll,
		"analytics":      {"analytics": true, "marketing": false},
		"refusal":        {"analytics": false, "marketing": false},
		"with necessary": {"necessary": true, "analytics": true, "marketing": true},
	} {
		t.Run(name, func(t *testing.T) {
			recs := []*kgo.Record{holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e2", nil), holdEvent(t, "u2", "x1", nil),
				holdEvent(t, "u1", "e3", choice), holdEvent(t, "u1", "e4", nil)}
			held, _ := holdProcessor(t)
			want := holdRun(t, held, false, recs...)
			p, _, observe := queuedProcessor(t)
			observe(recs...)
			got := holdRun(t, p, false, recs...)

			require.Equal(t, keysOf(want.decisions), keysOf(got.decisions))
			require.Equal(t, []string{"e1", "e1", "e1"}, eventIDs(got.decisions[:3]), "e1 decided for every destination at once, in one decision set")
			require.Equal(t, []string{"e1", "e2", "x1"}, eventIDs(want.decisions[:3]), "held: only ops at once")
			require.Equal(t, want.filtered, got.filtered)
			require.Equal(t, 2, p.state.holds.held(), "x1 (never answered) and e4 (after the choice) wait; e1 and e2 were decided at once")
			require.Len(t, got.held, 2, "held-events records for u2 and for u1's e4 only")
			require.Len(t, decisionsOf(got.decisions, "ga4"), 3, "e1, e2 and e3")
		})
	}
}

// Released and queued decisions agree when the choice comes in a later batch too, and a queued
// event's decisions are one decision set.
func TestQueuedChoiceAcrossBatches(t *testing.T) {
	first, answer := holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e2", grantAll)
	held, clock := holdProcessor(t)
	want := holdRun(t, held, false, first)
	*clock = clock.Add(1500 * time.Millisecond)
	wantLater := holdRun(t, held, false, answer)

	p, qclock, observe := queuedProcessor(t)
	observe(first, answer)
	got := holdRun(t, p, false, first)
	require.Zero(t, p.state.holds.held())
	require.Len(t, got.decisions, 3, "every destination decided at once")
	*qclock = qclock.Add(1500 * time.Millisecond)
	gotLater := holdRun(t, p, false, answer)
	require.Equal(t, keysOf(append(want.decisions, wantLater.decisions...)), keysOf(append(got.decisions, gotLater.decisions...)))
	require.Equal(t, []string{"e2"}, gotLater.filtered["ga4"], "the choosing event releases nothing more")
	require.Equal(t, append(want.filtered["ga4"], wantLater.filtered["ga4"]...), append(got.filtered["ga4"], gotLater.filtered["ga4"]...))
}

// Whatever the hold could decide otherwise leaves the events to it: a consent update or an event
// choosing some purposes between the run and the choice, a run longer than the cap, a choice
// received after the window, a window already passed, a choosing event that is a resend (of an
// event of the run, or of one seen before), and a user who holds events already.
func TestQueuedChoiceLeavesToTheHold(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC).UnixMilli()
	cases := map[string]func(t *testing.T, p *Processor, clock *time.Time) []*kgo.Record{
		"consent update between": func(t *testing.T, _ *Processor, _ *time.Time) []*kgo.Record {
			return []*kgo.Record{holdEvent(t, "u1", "e1", nil), consentRecord(t, "u1", map[string]bool{"analytics": true}, false), holdEvent(t, "u1", "e2", grantAll)}
		},
		"partial choice between": func(t *testing.T, _ *Processor, _ *time.Time) []*kgo.Record {
			return []*kgo.Record{holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e2", map[string]bool{"analytics": true}), holdEvent(t, "u1", "e3", grantAll)}
		},
		"past the cap": func(t *testing.T, _ *Processor, _ *time.Time) []*kgo.Record {
			var recs []*kgo.Record
			for _, id := range []string{"e1", "e2", "e3", "e4"} { // the cap is three
				recs = append(recs, holdEvent(t, "u1", id, nil))
			}
			return append(recs, holdEvent(t, "u1", "e5", grantAll))
		},
		"choice after the window": func(t *testing.T, _ *Processor, _ *time.Time) []*kgo.Record {
			return []*kgo.Record{holdEventAt(t, "u1", "e1", nil, now), holdEventAt(t, "u1", "e2", grantAll, now+time.Minute.Milliseconds()+1)}
		},
		"window passed": func(t *testing.T, _ *Processor, clock *time.Time) []*kgo.Record {
			*clock = clock.Add(time.Minute)
			return []*kgo.Record{holdEventAt(t, "u1", "e1", nil, now), holdEventAt(t, "u1", "e2", grantAll, now+1000)}
		},
		"resend of the run": func(t *testing.T, _ *Processor, _ *time.Time) []*kgo.Record {
			return []*kgo.Record{holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e1", grantAll)}
		},
		"resend of an earlier event": func(t *testing.T, p *Processor, _ *time.Time) []*kgo.Record {
			holdRun(t, p, false, holdEvent(t, "u1", "e0", grantAll))
			return []*kgo.Record{holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e0", grantAll)}
		},
		"holding already": func(t *testing.T, p *Processor, _ *time.Time) []*kgo.Record {
			holdRun(t, p, false, holdEvent(t, "u1", "e0", nil)) // held without the lookahead's knowing
			return []*kgo.Record{holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e2", grantAll)}
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			p, clock, observe := queuedProcessor(t)
			recs := build(t, p, clock)
			observe(recs...)
			first := recs[0]
			batch := p.state.begin()
			defer p.release(batch)
			p.tally.reset()
			_, err := p.handle(first, batch)
			require.NoError(t, err)
			h, err := batch.heldOf(0, "u1")
			require.NoError(t, err)
			require.Equal(t, first.Offset, h.Events[len(h.Events)-1].Offset, "the first event is held")
		})
	}
}

// The lookahead forgets a run once the processor passed its last event, and notes no runs past
// its bound.
func TestQueuedChoicesForgotten(t *testing.T) {
	p, _, observe := queuedProcessor(t)
	e1, e2, e3 := holdEvent(t, "u1", "e1", nil), holdEvent(t, "u1", "e2", grantAll), holdEvent(t, "u2", "x1", nil)
	observe(e1, e2, e3)
	require.Equal(t, 2, p.ahead.choices.n)
	p.ahead.passed(0, e1.Offset)
	_, _, ok := p.ahead.queuedFor(0, "u1", e1.Offset)
	require.False(t, ok)
	require.Equal(t, 1, p.ahead.choices.n)
	p.ahead.passed(0, e3.Offset)
	require.Zero(t, p.ahead.choices.n)
	runs := p.ahead.choices.parts[0]
	require.Empty(t, runs.users)
	require.Empty(t, runs.queue)

	// A run of a user with a run before it, forgotten first (its slot reused by the next run).
	a1, a2, a3 := holdEvent(t, "u4", "a1", nil), holdEvent(t, "u4", "a2", grantAll), holdEvent(t, "u4", "a3", nil)
	observe(a1, a2, a3)
	require.Equal(t, 2, p.ahead.choices.n)
	p.ahead.passed(0, a2.Offset)
	require.Equal(t, 1, p.ahead.choices.n)
	_, _, ok = p.ahead.queuedFor(0, "u4", a1.Offset)
	require.False(t, ok)
	observe(holdEvent(t, "u5", "b1", nil), holdEvent(t, "u5", "b2", grantAll))
	_, events, ok := p.ahead.queuedFor(0, "u5", a3.Offset+1)
	require.True(t, ok)
	require.Equal(t, 1, events)
	require.Len(t, runs.slots, 2, "freed slots are reused")
	require.EqualValues(t, -1, runs.newest(keyOf(&p.ahead.choices.users, "u4")).prev, "u4's forgotten run unlinked")

	p.ahead.choices.n = maxChoiceRuns
	observe(holdEvent(t, "u3", "y1", nil))
	require.Nil(t, runs.newest(keyOf(&p.ahead.choices.users, "u3")), "past the bound")
}

// BenchmarkChoicesAheadMemory reports the heap a run of the lookahead's queued choices keeps (a
// user's two events without a choice, then the choice), at maxChoiceRuns runs, and what a
// garbage collection of the process costs with them (gc-ns: a forced runtime.GC, the mean of
// five; the runs are kept so that no pointer in them is scanned):
//
//	go test -run '^$' -bench ChoicesAheadMemory -benchtime 1x ./processors/enforce/
func BenchmarkChoicesAheadMemory(b *testing.B) {
	for range b.N {
		p := newTestProcessor(b, 1)
		p.cfg.Policy.Hold = &policy.Hold{Window: time.Minute, MaxEventsPerUser: 100}
		p.ahead.choices = newChoicesAhead(p.cfg.Policy)
		ev := schemas.Event{Event: "page", Jurisdiction: "EU", TimestampMs: 1,
			Context: map[string]string{"page_url": `"https://shop.example/"`}, Properties: map[string]string{"email": `"a@example.com"`}}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		offset := int64(0)
		for u := range maxChoiceRuns {
			ev.UserID = fmt.Sprintf("user-%07d", u)
			for i, choice := range []map[string]bool{nil, nil, grantAll} {
				ev.EventID, ev.Consent = fmt.Sprintf("ev-%07d-%d", u, i), choice
				offset++
				p.ahead.observe(&kgo.Record{Partition: 0, Offset: offset, Value: schemas.Events.MustEncode(&ev)})
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		require.Equal(b, maxChoiceRuns, p.ahead.choices.n)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/maxChoiceRuns, "heap-B/run")
		start := time.Now()
		for range 5 {
			runtime.GC()
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/5, "gc-ns")
		runtime.KeepAlive(p)
	}
}

// The lookahead notes queued choices only where processor.queued_choices asks it to, and the
// policy holds.
func TestQueuedChoicesOnlyWhenConfigured(t *testing.T) {
	_, cfg, _ := testProcessor(t)
	cfg.Policy.Hold = &policy.Hold{Window: time.Minute, MaxEventsPerUser: 3}
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // never dialled: nothing is followed
	for _, on := range []bool{false, true} {
		cfg.Processor.QueuedChoices = on
		l, err := newLookahead(cfg, zap.NewNop(), newCodebook())
		require.NoError(t, err)
		require.Equal(t, on, l.choices != nil, "queued_choices %v", on)
		l.close()
	}
}
