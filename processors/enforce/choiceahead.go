package enforce

import (
	"hash/maphash"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/statestore"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Choices already queued (the pre-consent hold's shortcut; docs/consent.md "Events before the
// choice"). Holding an event costs the processor its held list, a raw copy, changelog records
// and a second decision set; it costs that most when the processor is behind, and then the
// choice that will release the event is usually already in the raw log behind it. So, under the
// policy's hold and with processor.queued_choices (off by default: the event then reaches the
// vendors apart from its user's choosing event, in a request of its own, which with a vendor
// taking one user per request costs the sinks more than the processor saves), the lookahead
// (which reads every owned raw partition ahead of the processor anyway) also notes, per user,
// each run of events that choose nothing and the record that ends the run. When that record is an event choosing for every destination that can wait, an event
// of the run is decided at once under that choice (queued) instead of being held: exactly what
// the choice's arrival would decide for it, in the same order at the vendors, with held_ms as
// long as it waited. Anything else ending a run (a consent update, an erasure, an event choosing
// for some destinations only, a resend of an event of the run) leaves the run to the hold; so
// do a run longer than the cap, a choice outside the window, a user already holding events, and
// a choosing event that will be a resend (hold.go checks those when it decides).

// maxChoiceRuns bounds the runs the lookahead keeps (BenchmarkChoicesAheadMemory: about 200
// bytes each with two events, 210 MB at the bound, none of it scanned by the garbage collector):
// past it, new runs are not noted and their events are held, as without the shortcut. `make
// bench -hold` leaves 550-700 thousand users' runs ahead of the processor.
const maxChoiceRuns = 1 << 20

// queuedChoice is the event that ended a run by choosing for every destination that can wait.
type queuedChoice struct {
	id         statestore.ID // its dedup id (user key and event id), when hasID
	hasID      bool
	receivedMs int64
	granted    uint64 // bit i: pol.Names[i] granted (every destination that can wait is chosen)
}

// choicesAhead are the runs of the partitions the lookahead reads (choiceruns.go).
type choicesAhead struct {
	pol      *policy.Policy
	waitable uint64 // bits of every destination that can wait for a choice
	seed     maphash.Seed
	users    [2]maphash.Seed // userKey's
	parts    map[int32]*runTable
	n        int // runs kept
}

func newChoicesAhead(pol *policy.Policy) *choicesAhead {
	if pol == nil || !pol.Holds() || len(pol.Names) > 64 {
		return nil // nothing is held (or more destinations than the choice's bits)
	}
	c := &choicesAhead{pol: pol, seed: maphash.MakeSeed(), users: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		parts: map[int32]*runTable{}}
	for i, name := range pol.Names {
		if d := pol.Destinations[name]; d != nil && d.Purpose != policy.Necessary {
			c.waitable |= 1 << i // a destination that can wait for a choice
		}
	}
	return c
}

// observeEvent notes one raw event of an owned partition, in log order (the lookahead's
// goroutine): decoded and read outside the lock, noted under it.
func (l *lookahead) observeEvent(r *kgo.Record) {
	ev, err := schemas.DecodeEventHead(r.Value) // its context and properties decide no choice
	if err != nil {
		return // the processor dead-letters it: it neither holds nor releases anything
	}
	chosen, granted := l.choices.choicesOf(&ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.choices.event(r.Partition, r.Offset, &ev, chosen, granted)
}

// queuedFor is the queued choice ending the run of the user's event at offset, and how many
// events the run has.
func (l *lookahead) queuedFor(partition int32, user string, offset int64) (queuedChoice, int, bool) {
	if l.choices == nil {
		return queuedChoice{}, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.choices.choiceFor(partition, user, offset)
}

// event notes an event: one choosing nothing extends its user's open run (or starts one); one
// choosing ends it, with the choice when it chooses for every destination that can wait and is
// not a resend of an event of the run.
func (c *choicesAhead) event(partition int32, offset int64, ev *schemas.Event, chosen, granted uint64) {
	user := ev.UserKey()
	u := keyOf(&c.users, user)
	t := c.parts[partition]
	var run *runSlot
	if t != nil {
		if run = t.newest(u); run != nil && run.ended {
			run = nil // only an open run grows or ends
		}
	}
	id := c.idHash(ev.EventID)
	switch {
	case chosen == 0 && run != nil:
		run.last = offset
		if int(run.count) <= c.pol.Hold.MaxEventsPerUser {
			t.addID(run, id)
		}
	case chosen == 0 && c.n < maxChoiceRuns:
		if t == nil {
			t = newRunTable()
			c.parts[partition] = t
		}
		t.start(u, offset, id)
		c.n++
	case chosen != 0 && run != nil:
		run.ended = true
		if chosen == c.waitable && !t.hasID(run, id) {
			dedup, ok := dedupID(user, ev.EventID)
			run.chosen, run.choice = true, queuedChoice{id: dedup, hasID: ok, receivedMs: ev.ReceivedMs, granted: granted}
		}
	}
}

// dedupID is the choosing event's id as the dedup store knows it.
func dedupID(user, eventID string) (statestore.ID, bool) {
	if eventID == "" {
		return statestore.ID{}, false // an event without an id is never a resend
	}
	return statestore.IDOf(user, eventID), true
}

// update notes a consent update of a user: it ends the user's open run, for the hold.
func (c *choicesAhead) update(partition int32, user string) {
	if c == nil || c.parts[partition] == nil {
		return
	}
	if run := c.parts[partition].newest(keyOf(&c.users, user)); run != nil {
		run.ended = true
	}
}

// choicesOf is what ev chooses, as bits of pol.Names: chosen for every destination it makes a
// choice for, granted for those it grants (consent.Choices, the hold's own reading).
func (c *choicesAhead) choicesOf(ev *schemas.Event) (chosen, granted uint64) {
	if len(ev.Consent) == 0 && ev.Signals == nil {
		return 0, 0
	}
	choose := consent.Choices(ev, c.pol)
	for i, name := range c.pol.Names {
		if c.waitable&(1<<i) == 0 {
			continue // necessary: never waits, its choice is not asked
		}
		if g, ok := choose(name); ok {
			chosen |= 1 << i
			if g {
				granted |= 1 << i
			}
		}
	}
	return chosen, granted
}

func (c *choicesAhead) idHash(id string) uint64 { return maphash.String(c.seed, id) }

// choiceFor is the queued choice that ends the run the user's event at offset belongs to.
func (c *choicesAhead) choiceFor(partition int32, user string, offset int64) (queuedChoice, int, bool) {
	t := c.parts[partition]
	if t == nil {
		return queuedChoice{}, 0, false
	}
	run := t.find(keyOf(&c.users, user), offset)
	if run == nil || !run.chosen {
		return queuedChoice{}, 0, false
	}
	return run.choice, int(run.count), true
}

// passed forgets the runs the processor has passed: their choice can decide nothing any more.
func (c *choicesAhead) passed(partition int32, offset int64) {
	if c == nil || c.parts[partition] == nil {
		return
	}
	c.n -= c.parts[partition].passed(offset)
}

// drop forgets a partition's runs (its reading starts again, or it was given up).
func (c *choicesAhead) drop(partition int32) {
	if c == nil || c.parts[partition] == nil {
		return
	}
	c.n -= len(c.parts[partition].queue) // one mark per run
	delete(c.parts, partition)
}

// queued is the choice already queued behind the user's event at r for its waiting destinations
// (nil: hold it), and how long the event has waited (held_ms). The choice is taken only where
// holding and releasing would decide the same: the user holds nothing yet, the run is within
// the cap, the choice arrived within the window and the window has not passed, and the choosing
// event will not be a resend (a resend releases nothing).
func (p *Processor) queued(batch *stagedState, r *kgo.Record, user string, pending []string, receivedMs int64) (map[string]bool, int64, error) {
	c, events, ok := p.ahead.queuedFor(r.Partition, user, r.Offset)
	if !ok || events > p.cfg.Policy.Hold.MaxEventsPerUser || batch.hasHeld(r.Partition, user) {
		return nil, 0, nil
	}
	now, window := p.now().UnixMilli(), p.cfg.Policy.Hold.Window.Milliseconds()
	arrived := p.arrival(receivedMs)
	if now-arrived >= window || c.receivedMs-arrived > window {
		return nil, 0, nil
	}
	if c.hasID {
		seen, err := batch.seen(r.Partition, c.id, now)
		if err != nil || seen {
			return nil, 0, err
		}
	}
	choices := make(map[string]bool, len(pending))
	for _, dest := range pending {
		i := slices.Index(p.cfg.Policy.Names, dest)
		choices[dest] = c.granted&(1<<i) != 0
	}
	return choices, max(1, now-arrived), nil
}
