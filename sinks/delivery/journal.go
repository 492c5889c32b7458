package delivery

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/schemas"
)

// journal writes a destination's delivery journal (the topic <prefix>dest.<name>.ledger,
// schemas.JournalRecord):
//
//   - an intent, before a request is sent: its id and events. The request waits until Kafka
//     has acknowledged it.
//   - an outcome, after the answer: each event's status, the HTTP status and the latency. It
//     closes the intent; it is the ledger entry of the events the vendor took (ledgerStore) and
//     the deliveries rows of the request (the audit writer fans it out). It is acknowledged
//     before the poll's offsets are committed (flush).
//
// One goroutine (run) writes them in rounds, a group commit: a round takes every line queued
// since the last one, writes them as one record and waits for Kafka's acknowledgement, then lets
// the intents' requests go. While a round is on its way the next one fills: the intents of the
// lanes that start meanwhile and the outcomes answered meanwhile share a record. A vendor that
// takes one user's events per request (GA4) paid an intent and an outcome record per request,
// 0.84 records per event; a round now carries the requests of every lane in flight.
//
// All of one process's records go to one partition of the journal (home), so every request's
// outcome follows its intent in the topic, and a reader always meets the intent first. Each
// request names the partition of the source topic its events were read from: that is what the
// sink newly assigned a partition searches for requests in doubt (doubt.go).
type journal struct {
	store  *ledgerStore
	cl     *kgo.Client // produces to the journal topic, partitions chosen by hand
	dest   string
	window prometheus.Observer // tollgate_sink_ledger_window_seconds of the destination

	mu      sync.Mutex
	queue   []line        // lines waiting for the next round
	queued  uint64        // lines queued so far
	written uint64        // lines of the rounds finished so far (acknowledged or failed)
	ended   chan struct{} // closed when the round in progress ends (then replaced)
	err     error         // the first failed outcome since the last flush
	rounds  uint64        // rounds written: the records' keys
	home    int32         // the journal partition of this process; -1 until the first round

	urgent  chan struct{} // an intent or a flush waits: write at once
	lazy    chan struct{} // outcomes wait: write soon (outcomeLinger)
	quit    chan struct{} // closed by close: write what is queued and stop
	stopped chan struct{} // closed when run has returned

	// unacked counts outcomes queued and not yet acknowledged; since is when the last one was
	// acknowledged (or when outcomes began waiting with none outstanding): stalled reads them.
	unacked atomic.Int64
	since   atomic.Int64 // unix nanoseconds
}

// line is one request's intent or outcome, queued for the next round.
type line struct {
	req schemas.JournalRequest
	// done, for an intent, is told the round's result (buffered: the round never waits for it).
	done chan error
	// delivered: an outcome with events the vendor took, answered then (the window metric).
	delivered bool
	answered  time.Time
}

// outcomeLinger is how long outcomes alone wait for a round: a lane with more requests makes
// its next intent a moment after its outcome, and the two then share a record. An intent or a
// flush does not wait.
const outcomeLinger = 2 * time.Millisecond

// maxJournalRecord bounds the (estimated) bytes of one journal record: a round with more is cut
// into several records, well below Kafka's message size limit (1 MiB by default).
const maxJournalRecord = 256 << 10

// errJournalClosed is an intent's error once the journal has stopped: the request is not made.
var errJournalClosed = errors.New("delivery journal closed")

// newJournal starts the journal's writer; close stops it.
func newJournal(store *ledgerStore, cl *kgo.Client, dest string, window prometheus.Observer) *journal {
	j := &journal{store: store, cl: cl, dest: dest, window: window, ended: make(chan struct{}), home: -1,
		urgent: make(chan struct{}, 1), lazy: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go j.run()
	return j
}

// Sources of journaled requests: which consumer read the events (each request names its
// partition). A sink assigned partition p of its main topic settles the main requests of p left
// in doubt, the retry consumer those of the retry topic's p, a replay the replays'.
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
	lines := make([]line, len(req.parts))
	for i, p := range req.parts {
		q := schemas.JournalRequest{Kind: schemas.JournalIntent, RequestID: p.id, Source: req.source, Partition: p.part,
			AtMs: now.UnixMilli(), Events: make([]schemas.JournalEvent, len(p.items))}
		for k, it := range p.items {
			q.Events[k] = schemas.JournalEvent{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, Attempt: it.attempts + 1, RunID: it.ev.RunID}
		}
		lines[i] = line{req: q, done: make(chan error, 1)}
	}
	j.enqueue(lines, j.urgent)
	for _, l := range lines {
		select {
		case err := <-l.done:
			if err != nil {
				return fmt.Errorf("journal intent: %w", err)
			}
		case <-ctx.Done():
			return fmt.Errorf("journal intent: %w", ctx.Err()) // unsent closes it, should it be written yet
		case <-j.stopped:
			return errJournalClosed
		}
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
	lines := make([]line, 0, len(req.parts))
	for _, p := range req.parts {
		q := schemas.JournalRequest{Kind: schemas.JournalOutcome, RequestID: p.id, Source: req.source, Partition: p.part,
			AtMs: at.UnixMilli(), HTTPStatus: httpStatus, LatencyMs: latency.Milliseconds(), Resend: resend,
			Events: make([]schemas.JournalEvent, len(p.items))}
		for i, it := range p.items {
			e := schemas.JournalEvent{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, Attempt: it.attempts + 1, Status: schemas.JournalStatusUnsent, RunID: it.ev.RunID}
			if o := byItem[it]; o != nil {
				e.Attempt, e.Status, e.Error = o.attempt, o.status, o.reason
				if settled(o.status, resend) {
					entries = append(entries, schemas.LedgerEntry{EventID: it.ev.EventID, DecidedMs: it.ev.DecidedMs, DeliveredMs: at.UnixMilli(), Attempt: o.attempt})
				}
			}
			q.Events[i] = e
		}
		lines = append(lines, line{req: q, delivered: len(entries) > 0, answered: at})
	}
	j.store.remember(entries)
	j.enqueueOutcomes(lines)
}

// enqueueOutcomes queues outcome lines for a round without waiting for it (flush does).
func (j *journal) enqueueOutcomes(lines []line) {
	if j.unacked.Add(int64(len(lines))) == int64(len(lines)) {
		j.since.Store(time.Now().UnixNano()) // none were outstanding: the wait starts now
	}
	j.enqueue(lines, j.lazy)
}

// enqueue queues lines for the next round, together, and wakes the writer.
func (j *journal) enqueue(lines []line, wake chan struct{}) {
	j.mu.Lock()
	j.queue = append(j.queue, lines...)
	j.queued += uint64(len(lines))
	j.mu.Unlock()
	signal(wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// run writes rounds until close, then what is still queued.
func (j *journal) run() {
	defer close(j.stopped)
	for {
		select {
		case <-j.urgent:
		case <-j.lazy:
			select { // outcomes alone: a lane's next intent may be a moment away
			case <-j.urgent:
			case <-time.After(outcomeLinger):
			case <-j.quit:
			}
		case <-j.quit:
			for j.writeRound() {
			}
			return
		}
		j.writeRound()
	}
}

// writeRound writes every queued line and tells the intents; it reports whether there were any.
func (j *journal) writeRound() bool {
	j.mu.Lock()
	lines := j.queue
	j.queue = nil
	j.mu.Unlock()
	if len(lines) == 0 {
		return false
	}
	results := j.cl.ProduceSync(context.Background(), j.records(lines)...)
	err := results.FirstErr()
	for _, r := range results {
		if r.Err == nil { // the ledger's catch-ups need not wait to read it back (SyncOthers)
			j.store.own.Add(r.Record.Partition, r.Record.Offset)
		}
	}
	outcomes := 0
	for _, l := range lines {
		if l.done != nil {
			l.done <- err
			continue
		}
		outcomes++
		if err == nil && l.delivered {
			j.window.Observe(time.Since(l.answered).Seconds())
		}
	}
	if outcomes > 0 {
		j.unacked.Add(-int64(outcomes))
		j.since.Store(time.Now().UnixNano())
	}
	j.mu.Lock()
	if err != nil && outcomes > 0 {
		j.err = cmp.Or(j.err, err)
	}
	j.written += uint64(len(lines))
	close(j.ended)
	j.ended = make(chan struct{})
	j.mu.Unlock()
	return true
}

// records renders a round's lines as journal records: one, unless they outgrow maxJournalRecord.
// Each is keyed by this process's writer id and the round (unique: the compacted topic keeps them
// until its retention drops them), on the process's home partition.
func (j *journal) records(lines []line) []*kgo.Record {
	if j.home < 0 {
		j.home = j.store.homePartition()
	}
	j.rounds++
	var recs []*kgo.Record
	rec := &schemas.JournalRecord{Destination: j.dest, Writer: j.store.writer, AtMs: time.Now().UnixMilli()}
	size := 0
	emit := func() {
		key := j.store.writer + "-" + strconv.FormatUint(j.rounds, 10) + "-" + strconv.Itoa(len(recs))
		recs = append(recs, &kgo.Record{Topic: j.store.topic, Partition: j.home, Key: []byte(key), Value: j.encode(rec)})
		rec.Requests, size = nil, 0
	}
	for _, l := range lines {
		n := requestSize(&l.req)
		if size > 0 && size+n > maxJournalRecord {
			emit()
		}
		rec.Requests = append(rec.Requests, l.req)
		size += n
	}
	emit()
	return recs
}

// requestSize estimates a request's encoded bytes.
func requestSize(q *schemas.JournalRequest) int {
	n := 48 + len(q.RequestID) + len(q.Source)
	for _, e := range q.Events {
		n += 24 + len(e.EventID) + len(e.Status) + len(e.Error) + len(e.RunID)
	}
	return n
}

func (j *journal) encode(rec *schemas.JournalRecord) []byte {
	b, err := schemas.Journal.Encode(rec)
	if err != nil {
		panic(err) // our own well-typed record: a failure is a programming error
	}
	return b
}

// flush waits until every outcome queued so far is acknowledged; it returns the first
// failure, so the caller does not commit offsets past an event whose outcome is not stored.
func (j *journal) flush(ctx context.Context) error {
	j.mu.Lock()
	target := j.queued
	j.mu.Unlock()
	signal(j.urgent)
	for {
		j.mu.Lock()
		if j.written >= target {
			err := j.err
			j.err = nil
			j.mu.Unlock()
			if err != nil {
				return fmt.Errorf("store journal outcomes: %w", err)
			}
			return nil
		}
		ended := j.ended
		j.mu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return fmt.Errorf("store journal outcomes: %w", ctx.Err())
		case <-j.stopped:
			return fmt.Errorf("store journal outcomes: %w", errJournalClosed)
		}
	}
}

// closeWriter writes what is queued and stops the writer; past grace it gives up on Kafka
// (closing the client fails what it still holds, and those requests are in doubt).
func (j *journal) closeWriter(grace time.Duration) {
	close(j.quit)
	select {
	case <-j.stopped:
		return
	case <-time.After(grace):
	}
	j.cl.Close()
	<-j.stopped
}

// homeOf is the journal partition of a writer among n: spread by its id, so the processes of a
// destination write to different partitions.
func homeOf(writer string, n int) int32 {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(writer))
	return int32(h.Sum32() % uint32(n))
}
