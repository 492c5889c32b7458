package delivery

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/schemas"
)

// journal writes a destination's delivery journal (the topic <prefix>dest.<name>.ledger,
// schemas.JournalRecord), partitioned like the destination topic: each line goes to the
// partition its events were read from, so the sink that is assigned a partition finds the
// requests of that partition still in doubt (doubt.go).
//
//   - intent, before a request is sent: its id and events. The request waits for Kafka's
//     acknowledgement. The journal's client does not linger: the intents of concurrent lanes
//     that wait for one produce go together in the next one (group commit), so a batched vendor
//     pays one record per request, and one round trip shared by the requests of the moment.
//   - outcome, after the answer: each event's status, the HTTP status and the latency. It closes
//     the intent; it is the ledger entry of the events the vendor took (ledgerStore) and the
//     deliveries rows of the request (the audit writer fans it out). It is produced as soon as
//     the answer is in, and acknowledged before the poll's offsets are committed (flush).
type journal struct {
	store  *ledgerStore
	cl     *kgo.Client // produces to the journal topic, partitions chosen by hand
	dest   string
	window prometheus.Observer // tollgate_sink_ledger_window_seconds of the destination

	mu  sync.Mutex
	err error // the first failed outcome since the last flush

	// unacked counts outcomes produced and not yet acknowledged; since is when the last one was
	// acknowledged (or when outcomes began waiting with none outstanding): stalled reads them.
	unacked atomic.Int64
	since   atomic.Int64 // unix nanoseconds
}

// Sources of journaled requests: which consumer read the events (the partition is the
// record's own). A sink assigned partition p of its main topic settles the main requests of p
// left in doubt, the retry consumer those of the retry topic's p, a replay the replays'.
const (
	sourceMain   = "main"
	sourceRetry  = "retry"
	sourceReplay = "replay"
	sourceRepair = "repair"
)

// request is one request's lines in the journal: one per partition its events were read from.
type request struct {
	source string
	parts  []requestPart
}

type requestPart struct {
	id    string
	part  int32
	items []*item
}

// ledgerStall is how long Kafka may leave outcomes unacknowledged before the sink stops sending
// one poll's events while the poll before still waits for its outcomes (stalled).
const ledgerStall = 500 * time.Millisecond

// stalled reports whether outcomes have waited for Kafka's acknowledgement for over ledgerStall
// (a broker failing over, say). Every event sent meanwhile is in doubt should the sink crash, so
// the runner then lets only one poll be on its way, not two.
func (j *journal) stalled() bool {
	return j.unacked.Load() > 0 && time.Since(time.Unix(0, j.since.Load())) > ledgerStall
}

// newRequest groups a batch by the partition its events were read from.
func newRequest(source string, batch []*item) *request {
	base := rand.Text()
	req := &request{source: source}
	for _, it := range batch {
		i := 0
		for i < len(req.parts) && req.parts[i].part != it.part {
			i++
		}
		if i == len(req.parts) {
			req.parts = append(req.parts, requestPart{id: base + "-" + strconv.Itoa(int(it.part)), part: it.part})
		}
		req.parts[i].items = append(req.parts[i].items, it)
	}
	return req
}

// intend writes the request's intent and returns once Kafka acknowledged it (or with the
// error: the request must then not be sent, and unsent closes the intent).
func (j *journal) intend(ctx context.Context, req *request, now time.Time) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, p := range req.parts {
		rec := &schemas.JournalRecord{Kind: schemas.JournalIntent, RequestID: p.id, Destination: j.dest, Source: req.source,
			Writer: j.store.writer, AtMs: now.UnixMilli(), Events: make([]schemas.JournalEvent, len(p.items))}
		for i, it := range p.items {
			rec.Events[i] = schemas.JournalEvent{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, Attempt: it.attempts + 1, RunID: it.ev.RunID}
		}
		wg.Add(1)
		j.cl.Produce(ctx, j.record(p, rec), func(_ *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			first = cmp.Or(first, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("journal intent: %w", first)
	}
	return nil
}

// unsent closes the intent of a request that was not made after all (shutdown, or the intent
// itself failed): no deliveries rows, nothing in the ledger.
func (j *journal) unsent(req *request, now time.Time) {
	j.close(req, nil, 0, 0, false, now)
}

// outcome records the request's answer: outs are the outcomes of its events, as judged (an
// event of the request without one, sent again at once in a smaller request, is recorded
// unsent). The events the vendor took (and, with resend false, those in doubt) enter the local
// store at once, in one write for the request, so a later batch of this process never sends
// them again; the outcome then goes to the topic, for other processes, restarts and the audit.
func (j *journal) outcome(req *request, outs []outcome, httpStatus int, latency time.Duration, resend bool, answered time.Time) {
	j.close(req, outs, httpStatus, latency, resend, answered)
}

func (j *journal) close(req *request, outs []outcome, httpStatus int, latency time.Duration, resend bool, at time.Time) {
	byItem := make(map[*item]*outcome, len(outs))
	for i := range outs {
		byItem[outs[i].it] = &outs[i]
	}
	var entries []schemas.LedgerEntry
	recs := make([]*kgo.Record, 0, len(req.parts))
	for _, p := range req.parts {
		rec := &schemas.JournalRecord{Kind: schemas.JournalOutcome, RequestID: p.id, Destination: j.dest, Source: req.source,
			Writer: j.store.writer, AtMs: at.UnixMilli(), HTTPStatus: httpStatus, LatencyMs: latency.Milliseconds(),
			Resend: resend, Events: make([]schemas.JournalEvent, len(p.items))}
		for i, it := range p.items {
			e := schemas.JournalEvent{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, Attempt: it.attempts + 1, Status: schemas.JournalStatusUnsent, RunID: it.ev.RunID}
			if o := byItem[it]; o != nil {
				e.Attempt, e.Status, e.Error = o.attempt, o.status, o.reason
				if settled(o.status, resend) {
					entries = append(entries, schemas.LedgerEntry{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, DeliveredMs: at.UnixMilli(), Attempt: o.attempt})
				}
			}
			rec.Events[i] = e
		}
		recs = append(recs, j.record(p, rec))
	}
	j.store.remember(entries)
	j.produce(recs, at, len(entries) > 0)
}

// produce sends outcome records without waiting; flush waits for them.
func (j *journal) produce(recs []*kgo.Record, answered time.Time, delivered bool) {
	if j.unacked.Add(int64(len(recs))) == int64(len(recs)) {
		j.since.Store(time.Now().UnixNano()) // none were outstanding: the wait starts now
	}
	for _, rec := range recs {
		j.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			j.unacked.Add(-1)
			j.since.Store(time.Now().UnixNano())
			if err != nil {
				j.failed(err)
				return
			}
			if delivered {
				j.window.Observe(time.Since(answered).Seconds())
			}
		})
	}
}

// record is the Kafka record of one journal line: keyed by its request id (the compacted topic
// keeps an intent until its outcome replaces it), on its events' partition.
func (j *journal) record(p requestPart, rec *schemas.JournalRecord) *kgo.Record {
	b, err := schemas.Journal.Encode(rec)
	if err != nil {
		panic(err) // our own well-typed record: a failure is a programming error
	}
	return &kgo.Record{Topic: j.store.topic, Partition: p.part, Key: []byte(p.id), Value: b}
}

// failed keeps the first error of an outcome since the last flush, which returns it.
func (j *journal) failed(err error) {
	j.mu.Lock()
	j.err = cmp.Or(j.err, err)
	j.mu.Unlock()
}

// flush waits until every outcome produced so far is acknowledged; it returns the first
// failure, so the caller does not commit offsets past an event whose outcome is not stored.
func (j *journal) flush(ctx context.Context) error {
	if err := j.cl.Flush(ctx); err != nil {
		return fmt.Errorf("store journal outcomes: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.err
	j.err = nil
	if err != nil {
		return fmt.Errorf("store journal outcomes: %w", err)
	}
	return nil
}
