package delivery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Deliveries in doubt (CONTRACT §9): a request whose outcome is unknown. Either the sink sent it
// and got no answer (a timeout, or the connection lost after the body was written: inDoubt), or
// it crashed before recording the answer, which the next owner of the partition finds in the
// journal as an intent with no outcome (settleDoubts). Where the vendor dedups by event id the
// events are sent again; otherwise the destination's on_doubt decides (policy.ResendInDoubt).
// Either way each event gets an in_doubt deliveries row, so the audit never claims one delivery
// where there may have been two; an event not sent again enters the ledger, never to go out.

// errNoOutcome is the error of the in_doubt row of a request found without an outcome.
const errNoOutcome = "no_outcome_recorded"

// inDoubt reports whether a verdict leaves the request's outcome unknown: a temporary failure
// with no answer after the request was written, or a 2xx whose body broke off.
func inDoubt(v sdk.Verdict, wrote bool) bool {
	if v.Class != sdk.Retry {
		return false
	}
	return wrote && v.Status == 0 || v.Status >= 200 && v.Status < 300
}

// doubtful turns the outcomes of a request in doubt into in_doubt ones: sent again (again, or
// dead-lettered once the attempts are spent: parked) when resend, else settled as they are.
func doubtful(outs []outcome, resend bool) {
	for i := range outs {
		o := &outs[i]
		switch o.status {
		case StatusRetrying:
			o.status, o.again = StatusInDoubt, resend
		case StatusDeadLettered:
			o.status, o.parked = StatusInDoubt, resend
		default:
			continue
		}
		if !resend {
			o.notBefore = time.Time{}
		}
	}
}

// doubts remembers, per source, the partitions whose journal has been searched for requests in
// doubt since they were assigned.
type doubts struct {
	mu   sync.Mutex
	done map[string]map[int32]bool
}

// forget makes the next settleDoubts of these partitions search again (revoked or lost: the
// journal may get new intents of them from their next owner).
func (d *doubts) forget(source string, parts []int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range parts {
		delete(d.done[source], p)
	}
}

// todo returns the partitions not searched yet.
func (d *doubts) todo(source string, parts []int32) []int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int32
	for _, p := range parts {
		if !d.done[source][p] {
			out = append(out, p)
		}
	}
	return out
}

func (d *doubts) mark(source string, p int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = map[string]map[int32]bool{}
	}
	if d.done[source] == nil {
		d.done[source] = map[int32]bool{}
	}
	d.done[source][p] = true
}

// settleDoubts runs before a consumer sends the first events of a partition it was assigned:
// it reads the journal to its end and settles every intent of that source and partition that has
// no outcome — its request was sent (or about to be) by a sink that stopped before recording the
// answer. Each gets an in_doubt outcome (its events' rows; with on_doubt skip, their ledger
// entries, so the copies still on the topic, never committed, are not sent again). Intents of
// this process's own earlier flights of the partition have their outcomes by now: a consumer
// lets a rebalance through only with nothing in flight.
func (r *Runner) settleDoubts(ctx context.Context, source string, parts []int32) error {
	todo := r.doubts.todo(source, parts)
	if len(todo) == 0 {
		return nil
	}
	if err := r.journal.store.sync(ctx, 0); err != nil {
		return err
	}
	resend := r.dest.ResendInDoubt()
	for _, p := range todo {
		intents, err := r.journal.store.openIntents(p)
		if err != nil {
			return fmt.Errorf("delivery journal: open intents of partition %d: %w", p, err)
		}
		n := 0
		for i := range intents {
			if in := &intents[i]; in.Source == source {
				r.journal.noOutcome(in, p, resend, r.now())
				n += len(in.Events)
			}
		}
		if n > 0 {
			inDoubtEvents.WithLabelValues(r.dest.Name).Add(float64(n))
			r.log.Warn("requests in doubt found in the journal", zap.String("source", source), zap.Int32("partition", p),
				zap.Int("events", n), zap.Bool("resend", resend))
		}
		r.doubts.mark(source, p)
	}
	return nil
}

// noOutcome closes an intent found without an outcome: its events in doubt.
func (j *journal) noOutcome(in *schemas.JournalRequest, p int32, resend bool, now time.Time) {
	q := schemas.JournalRequest{Kind: schemas.JournalOutcome, RequestID: in.RequestID, Source: in.Source, Partition: p,
		AtMs: now.UnixMilli(), Resend: resend, Events: make([]schemas.JournalEvent, len(in.Events))}
	var entries []schemas.LedgerEntry
	for i, e := range in.Events {
		q.Events[i] = schemas.JournalEvent{EventID: e.EventID, DecidedMs: e.DecidedMs, Attempt: e.Attempt, Status: StatusInDoubt, Error: errNoOutcome, RunID: e.RunID}
		if !resend {
			entries = append(entries, schemas.LedgerEntry{EventID: e.EventID, DecidedMs: e.DecidedMs, DeliveredMs: now.UnixMilli(), Attempt: e.Attempt})
		}
	}
	j.store.remember(entries)
	j.enqueueOutcomes([]line{{req: q, answered: now}})
}
