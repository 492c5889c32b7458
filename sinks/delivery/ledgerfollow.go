package delivery

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// run follows the whole journal topic into the store until ctx ends: from each partition's
// stored offset, or from its start. Every sink process of the destination reads every
// partition: the ledger answers for any event, whoever sent it.
func (l *ledgerStore) run(ctx context.Context, cfg *config.Config) error {
	// In steps: a request's check does not wait for one (syncOthers); a search for requests in
	// doubt, rare, does.
	f, err := kafka.NewFollower(cfg, l.log, l.topic, l.apply, kafka.InSteps()...)
	if err != nil {
		return err
	}
	f.Batched(l.commit)
	f.Own(&l.own)
	defer f.Close()
	l.view.place(f)
	if f.Start(ctx, l.starts) != nil {
		return nil // stopped before it started
	}
	go l.expireHourly(ctx)
	f.Run(ctx)
	return nil
}

// sync returns once every journal record committed before the call is in the store; a
// catch-up that started less than reuse ago counts (kafka.Follower.Sync).
func (l *ledgerStore) sync(ctx context.Context, reuse time.Duration) error {
	return l.view.sync(ctx, reuse)
}

// syncOthers is sync for the journal records of other processes: this process's own are in the
// store before they are produced (remember), which is all a request's check needs.
func (l *ledgerStore) syncOthers(ctx context.Context, reuse time.Duration) error {
	return l.view.syncOthers(ctx, reuse)
}

// starts are the offsets to follow the topic from: the stored next offset, or the partition's
// start when there is none or the topic no longer holds it.
func (l *ledgerStore) starts(ctx context.Context, cl *kgo.Client) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	first, err := adm.ListStartOffsets(ctx, l.topic)
	if err == nil {
		err = first.Error()
	}
	var last kadm.ListedOffsets
	if err == nil {
		if last, err = adm.ListEndOffsets(ctx, l.topic); err == nil {
			err = last.Error()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", l.topic, err)
	}
	starts := map[int32]int64{}
	l.parts.Store(int32(len(first[l.topic])))
	first.Each(func(o kadm.ListedOffset) {
		starts[o.Partition] = o.Offset
		v, closer, err := l.db.Get(offsetKey(o.Partition))
		if err != nil {
			return
		}
		defer closer.Close()
		next := int64(binary.BigEndian.Uint64(v))
		// Past the end means the topic was made anew: the store is stale, read it all again.
		if end, ok := last.Lookup(l.topic, o.Partition); ok && next >= o.Offset && next <= end.Offset {
			starts[o.Partition] = next
		}
	})
	return starts, nil
}

// apply stages one journal record read from the topic: each intent in it is kept as open, each
// outcome closes its intent and enters the events the vendor took (or may have, not to be sent again)
// in the ledger. A LedgerEntry (one per delivered event, written before the journal) enters its
// event. commit writes the staged records of a fetch, with their partition's next offset, in one
// batch (the follower calls it before it counts them read).
func (l *ledgerStore) apply(r *kgo.Record) {
	if l.pending == nil {
		l.pending = l.db.NewBatch()
		l.next = make(map[int32]int64, 1)
	}
	l.next[r.Partition] = r.Offset + 1
	switch {
	case r.Value == nil: // a tombstone: nothing to keep
	case schemas.Journal.Is(r.Value):
		j, err := schemas.Journal.Decode(r.Value)
		if err != nil {
			l.skip(r, err)
			return
		}
		l.applyJournal(r, &j)
	default:
		e, err := schemas.LedgerEntries.Decode(r.Value)
		if err != nil {
			l.skip(r, err)
			return
		}
		if l.keeps(e.EventID) {
			l.stageEntry(e.DecidedMs, e.EventID, e.DeliveredMs)
		}
	}
}

// storeScope narrows a private store (a repair's) to its own: the intents of one source, which
// it alone settles, and the entries of the events it may send. The rest of the topic is live
// traffic's, hours of it while a repair runs: read past, not written to pebble.
type storeScope struct {
	source string
	event  func(eventID string) bool // nil: every event
}

func (l *ledgerStore) keeps(eventID string) bool {
	return l.only == nil || l.only.event == nil || l.only.event(eventID)
}

func (l *ledgerStore) applyJournal(r *kgo.Record, j *schemas.JournalRecord) {
	for i := range j.Requests {
		q := &j.Requests[i]
		part := q.Partition
		if part == schemas.PartitionOfRecord {
			part = r.Partition // version 1: written to its events' partition
		}
		key := intentKey(part, q.RequestID)
		ours := l.only == nil || q.Source == l.only.source
		if q.Kind == schemas.JournalIntent {
			if !ours {
				continue
			}
			// Kept alone, so settling it reads just its own request.
			one := schemas.JournalRecord{Destination: j.Destination, Writer: j.Writer, AtMs: j.AtMs, Requests: []schemas.JournalRequest{*q}}
			one.Requests[0].Partition = part
			if v, err := schemas.Journal.Encode(&one); err == nil {
				_ = l.pending.Set(key, v, nil)
			}
			continue
		}
		if ours {
			_ = l.pending.Delete(key, nil)
		}
		if j.Writer == l.writer {
			// Our own outcome: remember stored its entries before it was produced, and earlier in
			// the store's log than this fetch's offset, so no crash can keep the offset and lose them.
			continue
		}
		for _, e := range q.Events {
			if settled(e.Status, q.Resend) && l.keeps(e.EventID) {
				l.stageEntry(e.DecidedMs, e.EventID, q.AtMs)
			}
		}
	}
}

// settled reports whether an event of an outcome is never to be sent again: the vendor took it,
// or may have and the destination does not send events in doubt again.
func settled(status string, resend bool) bool {
	return status == StatusDelivered || status == StatusInDoubt && !resend
}

func (l *ledgerStore) stageEntry(decidedMs int64, eventID string, deliveredMs int64) {
	l.key = entryKeyTo(l.key[:0], decidedMs, eventID)
	l.filter.add(day(decidedMs), eventID)
	_ = l.pending.Set(l.key, u64(uint64(deliveredMs)), nil)
}

func (l *ledgerStore) skip(r *kgo.Record, err error) {
	l.log.Warn("skipping undecodable journal record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
}

func (l *ledgerStore) commit() {
	if l.pending == nil {
		return
	}
	b := l.pending
	l.pending = nil
	defer b.Close()
	for p, next := range l.next { // once per partition and fetch, not per record
		_ = b.Set(offsetKey(p), u64(uint64(next)), nil)
	}
	// No fsync: the store is a cache of the topic, and the offset travels in the same batch as
	// the entries, so after a crash both are lost together and read again.
	if err := b.Commit(pebble.NoSync); err != nil {
		l.log.Warn("delivery ledger: store write failed", zap.Error(err))
	}
}

// expireHourly expires old days (ledgerStore.expire) at start and then hourly.
func (l *ledgerStore) expireHourly(ctx context.Context) {
	for {
		l.expire(time.Now())
		if backoff.Sleep(ctx, time.Hour) != nil {
			return
		}
	}
}
