package enforce

import (
	"hash/maphash"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Choices already queued (the pre-consent hold's shortcut; docs/consent.md "Events before the
// choice"). Holding an event costs the processor its held list, a raw copy, changelog records
// and a second decision set; it costs that most when the processor is behind, and then the
// choice that will release the event is usually already in the raw log behind it. So, under the
// policy's hold, the lookahead (which reads every owned raw partition ahead of the processor
// anyway) also notes, per user, each run of events that choose nothing and the record that ends
// the run. When that record is an event choosing for every destination that can wait, an event
// of the run is decided at once under that choice (queued) instead of being held: exactly what
// the choice's arrival would decide for it, in the same order at the vendors, with held_ms as
// long as it waited. Anything else ending a run (a consent update, an erasure, an event choosing
// for some destinations only, a resend of an event of the run) leaves the run to the hold; so
// do a run longer than the cap, a choice outside the window, a user already holding events, and
// a choosing event that will be a resend (hold.go checks those when it decides).

// maxChoiceRuns bounds the runs the lookahead keeps (BenchmarkChoicesAheadMemory: about 270
// bytes each): past it, new runs are not noted and their events are held, as without the
// shortcut.
const maxChoiceRuns = 1 << 19

// queuedChoice is the event that ended a run by choosing for every destination that can wait.
type queuedChoice struct {
	eventID    string
	receivedMs int64
	granted    uint64 // bit i: pol.Names[i] granted (every destination that can wait is chosen)
}

// choiceRun is one run of a user's events that chose nothing, in log order.
type choiceRun struct {
	first, last int64    // offsets of its first and last event
	ids         []uint64 // hashes of their event ids
	ended       bool
	choice      *queuedChoice // what ended it; nil when open or ended by anything else
}

// choicesAhead are the runs of the partitions the lookahead reads, per partition and user.
type choicesAhead struct {
	pol      *policy.Policy
	waitable uint64 // bits of every destination that can wait for a choice
	seed     maphash.Seed
	runs     map[int32]map[string][]choiceRun
	queue    map[int32][]runMark // per partition, in log order: when each run may be forgotten
	n        int                 // runs kept
}

// runMark says that the user's run starting at first may be forgotten once the processor passed
// offset (the run's last event when marked; a run that grew since is marked again).
type runMark struct {
	offset, first int64
	user          string
}

func newChoicesAhead(pol *policy.Policy) *choicesAhead {
	if pol == nil || !pol.Holds() || len(pol.Names) > 64 {
		return nil // nothing is held (or more destinations than the choice's bits)
	}
	c := &choicesAhead{pol: pol, seed: maphash.MakeSeed(), runs: map[int32]map[string][]choiceRun{}, queue: map[int32][]runMark{}}
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
	user := ev.UserKey() // a slice of the whole record: cloned where kept
	runs := c.runs[partition][user]
	open := len(runs) > 0 && !runs[len(runs)-1].ended
	switch {
	case chosen == 0:
		c.extend(partition, offset, user, runs, open, c.idHash(ev.EventID))
	case open:
		run := &runs[len(runs)-1]
		run.ended = true
		if chosen == c.waitable && !slices.Contains(run.ids, c.idHash(ev.EventID)) {
			run.choice = &queuedChoice{eventID: strings.Clone(ev.EventID), receivedMs: ev.ReceivedMs, granted: granted}
		}
	}
}

// update notes a consent update of a user: it ends the user's open run, for the hold.
func (c *choicesAhead) update(partition int32, user string) {
	if c == nil {
		return
	}
	runs := c.runs[partition][user]
	if len(runs) > 0 && !runs[len(runs)-1].ended {
		runs[len(runs)-1].ended = true
	}
}

// extend adds an event choosing nothing to the user's open run, or starts one. A run keeps at
// most one id past the cap: longer, it is left to the hold anyway.
func (c *choicesAhead) extend(partition int32, offset int64, user string, runs []choiceRun, open bool, id uint64) {
	if open {
		run := &runs[len(runs)-1]
		run.last = offset
		if len(run.ids) <= c.pol.Hold.MaxEventsPerUser {
			run.ids = append(run.ids, id)
		}
		return
	}
	if c.n >= maxChoiceRuns {
		return
	}
	users := c.runs[partition]
	if users == nil {
		users = map[string][]choiceRun{}
		c.runs[partition] = users
	}
	user = strings.Clone(user)
	users[user] = append(runs, choiceRun{first: offset, last: offset, ids: []uint64{id}})
	c.n++
	c.queue[partition] = append(c.queue[partition], runMark{offset: offset, first: offset, user: user})
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
	for _, run := range c.runs[partition][user] {
		if run.first <= offset && offset <= run.last {
			if run.choice == nil {
				return queuedChoice{}, 0, false
			}
			return *run.choice, len(run.ids), true
		}
	}
	return queuedChoice{}, 0, false
}

// passed forgets the runs the processor has passed (their last event at or before offset):
// their choice can decide nothing any more. The queue is in log order of the marks, not of the
// runs' last events: a mark behind one not passed yet waits for it, which only delays forgetting.
func (c *choicesAhead) passed(partition int32, offset int64) {
	if c == nil {
		return
	}
	q := c.queue[partition]
	i := 0
	for ; i < len(q) && q[i].offset <= offset; i++ {
		if last, ok := c.forget(partition, q[i], offset); !ok {
			q = append(q, runMark{offset: last, first: q[i].first, user: q[i].user})
		}
	}
	clear(q[:i]) // the user keys they hold
	c.queue[partition] = q[i:]
}

// forget drops the marked run if the processor has passed it, and otherwise reports its last
// event.
func (c *choicesAhead) forget(partition int32, m runMark, offset int64) (last int64, forgotten bool) {
	users := c.runs[partition]
	runs := users[m.user]
	i := slices.IndexFunc(runs, func(r choiceRun) bool { return r.first == m.first })
	if i < 0 {
		return 0, true
	}
	if runs[i].last > offset {
		return runs[i].last, false
	}
	c.n--
	if runs = slices.Delete(runs, i, i+1); len(runs) == 0 {
		delete(users, m.user)
	} else {
		users[m.user] = runs
	}
	return 0, true
}

// drop forgets a partition's runs (its reading starts again, or it was given up).
func (c *choicesAhead) drop(partition int32) {
	if c == nil {
		return
	}
	for _, runs := range c.runs[partition] {
		c.n -= len(runs)
	}
	delete(c.runs, partition)
	delete(c.queue, partition)
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
	if c.eventID != "" {
		seen, err := batch.seen(r.Partition, user, c.eventID, now)
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
