package enforce

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The pre-consent hold (CONTRACT §9; docs/consent.md "Events before the choice"). Under the
// policy's `hold`, an event whose destinations wait for a choice the user has not made yet
// (consent.DecideOrHold) is decided for the other destinations at once and held for those, per user
// in arrival order, in the partition's store with its changelog (holdstate.go). It is decided
// when the choice arrives (a later event that chooses, decided after the held ones; a consent
// update), when the user is erased, when the window passes, or when the user holds more than
// the cap (the oldest goes). Every step is part of the batch's transaction, so a crash neither
// loses a held event nor decides one twice.

// Causes of a release (the releases metric's label).
const (
	releaseChoice     = "choice"     // a later event, or a consent update, chose
	releaseWithdrawal = "withdrawal" // a consent update refused
	releaseErasure    = "erasure"
	releaseWindow     = "window"
	releaseCap        = "cap"
	releaseQueued     = "queued" // decided at once: the choice was already queued (choiceahead.go)
)

// holdScanEvery is how often the window's timer looks for held events past the window; an idle
// processor polls at this pace while it holds anything (session.go), so a release never waits
// for traffic on its partition.
const holdScanEvery = time.Second

// holding reports whether the policy holds events.
func (p *Processor) holding() bool { return p.cfg.Policy != nil && p.cfg.Policy.Holds() }

// eventWithHold decides an event under the hold: first the held events this event chooses for
// (in their order, before it), then the event itself, holding it for the destinations that wait
// unless their choice is already queued behind it (choiceahead.go).
func (p *Processor) eventWithHold(r *kgo.Record, ev *schemas.Event, st *consent.State, key []byte, batch *stagedState) ([]*kgo.Record, error) {
	var recs []*kgo.Record
	user := ev.UserKey()
	if batch.hasHeld(r.Partition, user) {
		released, err := p.releaseHeld(batch, r.Partition, user, st, chosen(consent.Choices(ev, p.cfg.Policy)), releaseChoice, "")
		if err != nil {
			return nil, err
		}
		recs = released
	}
	// A choice already queued behind the event decides what would wait at once, in the event's one
	// decision set.
	var choices map[string]bool
	var heldMs int64
	var err error
	outs, pending := consent.DecideOrChoose(ev, st, p.cfg.Policy, p.now(), "", func(pending []string) map[string]bool {
		choices, heldMs, err = p.queued(batch, r, user, pending, ev.ReceivedMs)
		return choices
	})
	if err != nil {
		return nil, err
	}
	if choices != nil {
		for i := range outs {
			if _, chosen := choices[outs[i].Decision.Destination]; chosen {
				outs[i].Decision.HeldMs = heldMs
			}
		}
		p.metrics.releases.WithLabelValues(releaseQueued).Inc()
	}
	recs = p.appendDecided(recs, outs, key)
	if len(pending) == 0 {
		return recs, nil
	}
	held, err := p.hold(batch, r, user, pending, st, ev.ReceivedMs)
	return append(recs, held...), err
}

// arrival is when a held event arrived: ingest's receipt (receivedMs), so time queued before the
// processor counts too; now when ingest did not record it.
func (p *Processor) arrival(receivedMs int64) int64 {
	arrived := p.now().UnixMilli()
	if receivedMs > 0 {
		arrived = min(arrived, receivedMs)
	}
	return arrived
}

// hold adds the event to the user's held events; past the cap the oldest is decided at once.
// Its wait (held_ms, the window) counts from its arrival.
func (p *Processor) hold(batch *stagedState, r *kgo.Record, user string, dests []string, st *consent.State, receivedMs int64) ([]*kgo.Record, error) {
	h, err := batch.heldOf(r.Partition, user)
	if err != nil {
		return nil, err
	}
	h.Events = append(h.Events, schemas.HeldEvent{Offset: r.Offset, ArrivedMs: p.arrival(receivedMs), Destinations: dests})
	batch.keepBody(r.Partition, r.Offset, r.Value)
	var recs []*kgo.Record
	for len(h.Events) > p.cfg.Policy.Hold.MaxEventsPerUser {
		if recs, err = p.decideHeld(recs, batch, r.Partition, h.Events[0], st, nil, releaseCap, ""); err != nil {
			return nil, err
		}
		batch.dropBody(r.Partition, h.Events[0].Offset)
		h.Events = h.Events[1:]
	}
	batch.setHeld(r.Partition, h)
	return recs, nil
}

// chooser says what a release's source chooses for a destination: granted, and whether it
// chooses at all.
type chooser func(dest string) (granted, ok bool)

// picker says what of a held event is decided now: all of it as without a hold (all), or the
// destinations choices names, under those choices; the rest stays held.
type picker func(e schemas.HeldEvent) (choices map[string]bool, all bool)

// chosen is the picker of a choice (a later event, a consent update): the destinations choose
// answers for.
func chosen(choose chooser) picker {
	return func(e schemas.HeldEvent) (map[string]bool, bool) {
		var choices map[string]bool
		for _, dest := range e.Destinations {
			if granted, ok := choose(dest); ok {
				if choices == nil {
					choices = map[string]bool{}
				}
				choices[dest] = granted
			}
		}
		return choices, false
	}
}

// whole is the picker of a release as without a hold (an erasure, the window): the held events
// due accepts, every destination.
func whole(due func(schemas.HeldEvent) bool) picker {
	return func(e schemas.HeldEvent) (map[string]bool, bool) { return nil, due(e) }
}

// releaseHeld decides, in arrival order, what pick picks of the user's held events, under st; the
// rest stays held. cause labels the release (a refusal among the choices counts as a
// withdrawal). source, when set, is where the choice came from for the decisions'
// consent_source (a consent update: consent_api); a later event's choice is the event's own, as
// the engine reads it.
func (p *Processor) releaseHeld(batch *stagedState, partition int32, user string, st *consent.State, pick picker, cause, source string) ([]*kgo.Record, error) {
	h, err := batch.heldOf(partition, user)
	if err != nil {
		return nil, err
	}
	var recs []*kgo.Record
	kept := h.Events[:0:0]
	for _, e := range h.Events {
		choices, all := pick(e)
		if !all && len(choices) == 0 {
			kept = append(kept, e)
			continue
		}
		// decideHeld decides exactly the destinations choices names, or all of them without.
		if recs, err = p.decideHeld(recs, batch, partition, e, st, choices, cause, source); err != nil {
			return nil, err
		}
		e.Destinations = slices.DeleteFunc(slices.Clone(e.Destinations), func(d string) bool {
			_, decided := choices[d]
			return all || decided
		})
		if len(e.Destinations) == 0 {
			batch.dropBody(partition, e.Offset)
			continue
		}
		kept = append(kept, e)
	}
	if len(recs) > 0 { // a list nothing was decided from writes no changelog record
		h.Events = kept
		batch.setHeld(partition, h)
	}
	return recs, nil
}

// releaseByUpdate decides the user's held events a consent update covers: an erasure all of
// them, a choice those of the purposes it names.
func (p *Processor) releaseByUpdate(batch *stagedState, partition int32, u *schemas.ConsentUpdate) ([]*kgo.Record, error) {
	if !batch.hasHeld(partition, u.UserKey) {
		return nil, nil
	}
	st, err := p.committedState(batch, partition, u.UserKey)
	if err != nil {
		return nil, err
	}
	if st != nil && st.Erased {
		return p.releaseHeld(batch, partition, u.UserKey, st, whole(func(schemas.HeldEvent) bool { return true }), releaseErasure, "")
	}
	return p.releaseHeld(batch, partition, u.UserKey, st, chosen(func(dest string) (bool, bool) {
		d := p.cfg.Policy.Destinations[dest]
		if d == nil {
			return false, false
		}
		granted, ok := u.Consent[d.Purpose]
		return granted, ok
	}), releaseChoice, consent.SourceConsentAPI)
}

// committedState is the user's state as of this point of the batch, for the engine.
func (p *Processor) committedState(batch *stagedState, partition int32, user string) (*consent.State, error) {
	u, known, err := batch.lookup(partition, user)
	if err != nil || !known {
		return nil, err
	}
	return p.state.book.decisionState(u.refused(), u.erased), nil
}

// releaseDue decides the held events past the window, at most every holdScanEvery (and on
// every call with force): the window's timer. It skips the partitions that consumed
// reports the session no longer reads (nil: it reads them all).
func (p *Processor) releaseDue(batch *stagedState, force bool, consumed func(int32) bool) ([]*kgo.Record, error) {
	now := p.now()
	if !p.holding() || (!force && now.Before(p.nextHoldScan)) {
		return nil, nil
	}
	p.nextHoldScan = now.Add(holdScanEvery)
	cutoff := now.Add(-p.cfg.Policy.Hold.Window).UnixMilli()
	due, oldest := p.state.holds.due(cutoff)
	p.metrics.oldestHold.Set(ageSeconds(now, oldest))
	var recs []*kgo.Record
	for partition, users := range due {
		if p.state.store(partition) == nil || consumed != nil && !consumed(partition) {
			continue // given up since the scan, or revoked without the callback (consumedNow)
		}
		for _, user := range users {
			st, err := p.committedState(batch, partition, user)
			if err != nil {
				return nil, err
			}
			more, err := p.releaseHeld(batch, partition, user, st, whole(func(e schemas.HeldEvent) bool { return e.ArrivedMs <= cutoff }), releaseWindow, "")
			if err != nil {
				return nil, err
			}
			recs = append(recs, more...)
		}
	}
	return recs, nil
}

// holdsDue reports whether the window's timer has anything to release now.
func (p *Processor) holdsDue() bool {
	if !p.holding() || p.now().Before(p.nextHoldScan) {
		return false
	}
	due, _ := p.state.holds.due(p.now().Add(-p.cfg.Policy.Hold.Window).UnixMilli())
	return len(due) > 0
}

func ageSeconds(now time.Time, sinceMs int64) float64 {
	if sinceMs == 0 {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(sinceMs)).Seconds())
}

// decideHeld decides a held event for its waiting destinations and appends the records: with
// choices (destination → granted) as if the event had carried them, or as without a hold when
// choices is nil. held_ms is how long it waited.
func (p *Processor) decideHeld(recs []*kgo.Record, batch *stagedState, partition int32, e schemas.HeldEvent, st *consent.State, choices map[string]bool, cause, source string) ([]*kgo.Record, error) {
	raw, err := batch.body(partition, e.Offset)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errState, err)
	}
	ev, err := schemas.Events.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: held event at offset %d: %w", errState, e.Offset, err)
	}
	heldMs := max(1, p.now().UnixMilli()-e.ArrivedMs)
	key := []byte(ev.UserKey())
	if choices == nil {
		waiting := func(dest string) bool { return slices.Contains(e.Destinations, dest) }
		recs = p.decideFor(recs, &ev, st, key, waiting, heldMs)
	} else {
		recs = p.appendDecided(recs, p.decideChosen(&ev, st, choices, heldMs, source), key)
	}
	p.metrics.releases.WithLabelValues(releaseCause(cause, choices)).Inc()
	return recs, nil
}

// releaseCause is cause, or a withdrawal when a choice refused any destination (of a consent
// update or a later event).
func releaseCause(cause string, choices map[string]bool) string {
	for _, granted := range choices {
		if !granted && cause == releaseChoice {
			return releaseWithdrawal
		}
	}
	return cause
}

// decideChosen decides ev for the destinations choices names (destination → granted) as if ev
// had carried those choices (consent.DecideChosen), each decision with heldMs. source, when set,
// replaces the decisions' consent_source (a consent update: consent_api).
func (p *Processor) decideChosen(ev *schemas.Event, st *consent.State, choices map[string]bool, heldMs int64, source string) []consent.Outcome {
	outs := consent.DecideChosen(ev, st, p.cfg.Policy, p.now(), "", choices)
	for i := range outs {
		if source != "" && outs[i].Decision.ConsentSource != "" {
			outs[i].Decision.ConsentSource = source
		}
	}
	return waited(outs, heldMs)
}
