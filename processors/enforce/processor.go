// Package enforce runs the consent engine (processors/consent) over the raw topic: it reads
// events and consent updates, decides per event and destination, and writes filtered events,
// decisions and the consent-state changelog — all in one Kafka transaction per polled batch, so a
// crash at any point yields neither a lost nor a duplicated decision or filtered event.
package enforce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	stagemetrics "github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Processor is one member of the consent-processor group.
type Processor struct {
	cfg     *config.Config
	log     *zap.Logger
	state   *stateStore
	ahead   *lookahead
	metrics *metrics
	tally   tally // the open transaction's counts, for the shared metrics once it commits
	topics  topics
	// decisionCounts holds the decisions counter of each (destination, outcome, reason) met
	// so far, so a decision costs no label lookup (Run's goroutine only).
	decisionCounts map[decisionLabels]prometheus.Counter
	now            func() time.Time
	// expired is when the stores last dropped their day buckets past the dedup window.
	expired time.Time
	// nextHoldScan is when the hold's window timer next looks for held events past the window.
	nextHoldScan time.Time
	// instance names this member: its static group membership and its transactional id.
	instance string
	// stopErr is set by a partition callback that could not prepare its partitions: franz-go's
	// callbacks return nothing, so the session checks it after each poll, before deciding any
	// record, and ends (session.go: the next session assigns and restores again).
	stopErr atomic.Pointer[error]
}

// stop makes Run return err (the first one given) after the current poll.
func (p *Processor) stop(err error) { p.stopErr.CompareAndSwap(nil, &err) }

// catchUpTimeout bounds the wait for the lookahead before a batch; past it the batch is aborted
// and fetched again rather than decided without the latest withdrawals.
const catchUpTimeout = 30 * time.Second

// New returns a processor for the configured policy.
func New(cfg *config.Config, log *zap.Logger) *Processor {
	state := newStateStore(filepath.Join(cfg.StatePath(), instance()), cfg.Dedup.Window)
	p := newProcessor(cfg, log.Named("processor"), state)
	if skew, ok := testClockSkew(p.log); ok {
		p.now = func() time.Time { return time.Now().Add(skew) }
	}
	return p
}

// testClockSkew is TOLLGATE_TEST_CLOCK_SKEW (a Go duration), the end-to-end tests' way to move
// a processor's clock past a hold's window without waiting for it (docs/testing.md). It is for
// tests only: every decision time moves with it.
func testClockSkew(log *zap.Logger) (time.Duration, bool) {
	v := os.Getenv("TOLLGATE_TEST_CLOCK_SKEW")
	if v == "" {
		return 0, false
	}
	skew, err := time.ParseDuration(v)
	if err != nil {
		log.Warn("TOLLGATE_TEST_CLOCK_SKEW is not a duration; ignored", zap.String("value", v))
		return 0, false
	}
	log.Warn("the processor's clock is moved for a test", zap.Duration("skew", skew))
	return skew, true
}

func newProcessor(cfg *config.Config, log *zap.Logger, state *stateStore) *Processor {
	return &Processor{cfg: cfg, log: log, state: state, metrics: defaultMetrics, now: time.Now, instance: instance(),
		topics: newTopics(cfg), decisionCounts: map[decisionLabels]prometheus.Counter{}}
}

// topics are the names of the topics the processor writes, built once rather than per record.
type topics struct {
	decisions, duplicates, dedupIDs, state, held string
	dest                                         map[string]string // per destination
}

func newTopics(cfg *config.Config) topics {
	t := topics{decisions: cfg.Topic(config.TopicDecisions), duplicates: cfg.Topic(config.TopicDuplicates),
		dedupIDs: cfg.Topic(config.TopicDedupIDs), state: cfg.Topic(config.TopicState), held: cfg.Topic(config.TopicHeld),
		dest: map[string]string{}}
	if cfg.Policy != nil {
		for _, name := range cfg.Policy.Names {
			t.dest[name] = cfg.Topic(config.DestTopic(name))
		}
	}
	return t
}

// destTopic is the destination's topic.
func (t topics) destTopic(cfg *config.Config, dest string) string {
	if topic, ok := t.dest[dest]; ok {
		return topic
	}
	return cfg.Topic(config.DestTopic(dest))
}

type decisionLabels struct{ destination, outcome, reason string }

// countDecision adds one to the decisions counter of d's labels.
func (p *Processor) countDecision(d *schemas.Decision) {
	k := decisionLabels{d.Destination, d.Outcome, d.Reason}
	c, ok := p.decisionCounts[k]
	if !ok {
		c = p.metrics.decisions.WithLabelValues(k.destination, k.outcome, k.reason)
		p.decisionCounts[k] = c
	}
	c.Inc()
}

// transactionalID names this process's producer. It must be stable across restarts of the same
// instance so that a restarted processor fences and aborts the transaction its predecessor left
// open (a new id would leave that transaction blocking read_committed readers until it times out).
// Several processes on one host set TOLLGATE_PROCESSOR_INSTANCE to tell themselves apart.
func transactionalID(cfg *config.Config, instance string) string {
	return cfg.ProcessorGroup() + "-" + instance
}

func instance() string {
	id := os.Getenv("TOLLGATE_PROCESSOR_INSTANCE")
	if id == "" {
		id, _ = os.Hostname()
	}
	return id
}

// sessionTimeout is how long the group waits for a silent member before giving its partitions
// to the others: the longest a killed processor's partitions stand still.
const sessionTimeout = 10 * time.Second

// Run consumes until ctx ends, then finishes the open transaction and leaves the group. A session
// that fails (a fenced producer, a restore that cannot finish) is replaced in-process (session.go).
func (p *Processor) Run(ctx context.Context) error {
	ahead, err := newLookahead(p.cfg, p.log, p.state.book)
	if err != nil {
		return err
	}
	p.ahead = ahead
	defer ahead.close()
	aheadCtx, stopAhead := context.WithCancel(ctx)
	defer stopAhead()
	go ahead.run(aheadCtx)
	defer func() {
		if err := p.state.closeAll(); err != nil {
			p.log.Warn("closing state stores", zap.Error(err))
		}
	}()
	p.log.Info("consent processor started", zap.String("topic", p.cfg.Topic(config.TopicRaw)), zap.String("policy_version", p.cfg.Policy.Version))
	return p.runSessions(ctx)
}

// maxPollRecords bounds one transaction's records. A poll of a large backlog held 73,000 events,
// and deciding them took longer than the transaction timeout on a busy machine: the broker
// aborted the transaction and fenced the processor (INVALID_PRODUCER_EPOCH), which exited. At
// about 40 µs per event, 5,000 take a fifth of a second, far inside the 10 s timeout even when
// the processor gets a small share of the CPU, and a commit per 5,000 events costs little.
const maxPollRecords = 5000

// endTimeout bounds ending a transaction. It outlasts a broker failure: when the broker that is
// the transaction coordinator or a partition leader dies, the others notice it after the broker
// session timeout (9 s by default) and elect new leaders, and only then can the commit finish. A
// shorter bound (it was 15 s) made the processor exit while a killed broker's partitions moved.
const endTimeout = time.Minute

// processBatch handles one poll's records in one transaction. Consent changes made while
// processing are staged and applied to the local state only if the transaction commits, so an
// aborted batch (rebalance, broker error) is re-read against the state it started from. It
// returns whether the transaction committed; an error means the session cannot go on.
func (p *Processor) processBatch(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches) (bool, error) {
	if err := sess.Begin(); err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	batch := p.state.begin()
	defer p.release(batch)
	p.tally.reset()
	parts := batchPartitions(fetches)
	if err := p.ahead.catchUp(ctx, parts, catchUpTimeout); err != nil {
		p.log.Warn("batch aborted: withdrawals ahead unknown", zap.Error(err))
		return false, p.abort(ctx, sess)
	}
	// produceErr is set by the produce promises, which run on franz-go's goroutines while this
	// one reads it: behind a mutex. A failure after the read still aborts: End does.
	var (
		produceMu  sync.Mutex
		produceErr error
	)
	stateTopic, dedupTopic, heldTopic := p.topics.state, p.topics.dedupIDs, p.topics.held
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			produceMu.Lock()
			if produceErr == nil {
				produceErr = err
			}
			produceMu.Unlock()
		}
		if err == nil && (r.Topic == stateTopic || r.Topic == dedupTopic || r.Topic == heldTopic) {
			batch.produced(r.Topic, r.Partition, r.Offset)
		}
	}
	n := 0
	var stateErr error
	fetches.EachRecord(func(r *kgo.Record) {
		if stateErr != nil {
			return
		}
		outs, err := p.handle(r, batch)
		if err != nil {
			stateErr = err
			return
		}
		for _, out := range outs {
			sess.Produce(ctx, out, promise)
		}
		n++
	})
	if stateErr == nil {
		released, err := p.releaseDue(batch, n == 0, consumedNow(sess, p.cfg.Topic(config.TopicRaw)))
		for _, rec := range released {
			sess.Produce(ctx, rec, promise)
		}
		stateErr = err
	}
	if stateErr == nil {
		for _, rec := range batch.changelog(dedupTopic) {
			sess.Produce(ctx, rec, promise)
		}
		for _, rec := range batch.heldChangelog(heldTopic) {
			sess.Produce(ctx, rec, promise)
		}
	}
	if stateErr != nil {
		// The store cannot be read: deciding without it could forward a refused or resent event.
		if err := p.abort(ctx, sess); err != nil {
			return false, err
		}
		return false, fmt.Errorf("%w: read: %w", errState, stateErr)
	}
	produceMu.Lock()
	failed := produceErr
	produceMu.Unlock()
	if fenced(failed) {
		// Ending the transaction would wait on a producer the broker no longer knows (up to
		// endTimeout): the session is replaced at once, and the new producer's epoch aborts it.
		return false, fmt.Errorf("produce: %w", failed)
	}
	// Use a fresh context for End: a shutdown must still commit or abort the batch it started.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	committed, err := sess.End(endCtx, kgo.TransactionEndTry(failed == nil))
	if err != nil {
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		p.metrics.aborted.Inc()
		stagemetrics.Errors.WithLabelValues(stagemetrics.StageProcessor, "aborted_transaction").Inc()
		p.log.Warn("transaction aborted; the batch will be processed again", zap.Int("records", n), zap.NamedError("produce_error", failed))
		return false, nil
	}
	if err := p.state.commit(batch); err != nil {
		// The transaction is committed and the changelog has it: the next session restores it.
		return true, fmt.Errorf("%w: apply committed changes: %w", errState, err)
	}
	p.metrics.duplicates.Add(float64(batch.dups))
	p.metrics.held.Set(float64(p.state.holds.held()))
	stagemetrics.Discarded.WithLabelValues(stagemetrics.StageProcessor, "duplicate").Add(float64(batch.dups))
	p.expire()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			p.ahead.passed(fp.Partition, fp.Records[len(fp.Records)-1].Offset)
		}
	})
	p.metrics.processed.Add(float64(n))
	p.tally.committed(n)
	return true, nil
}

// abort ends the open transaction without committing: the session rewinds to the last committed
// offsets, so the batch is fetched and decided again.
func (p *Processor) abort(ctx context.Context, sess *kgo.GroupTransactSession) error {
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if _, err := sess.End(endCtx, kgo.TryAbort); err != nil {
		return fmt.Errorf("abort transaction: %w", err)
	}
	p.metrics.aborted.Inc()
	stagemetrics.Errors.WithLabelValues(stagemetrics.StageProcessor, "aborted_transaction").Inc()
	return nil
}

func batchPartitions(fetches kgo.Fetches) []int32 {
	var parts []int32
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			parts = append(parts, fp.Partition)
		}
	})
	return parts
}

// handle turns one raw record into the records to produce: for an event, its decisions record
// (every destination's decision) and a filtered event per forwarded destination; for a consent update, the user's new state.
// A record that no tollgate schema wrote goes to the raw dead-letter topic: it must never stop
// the partition.
func (p *Processor) handle(r *kgo.Record, batch *stagedState) ([]*kgo.Record, error) {
	switch {
	case schemas.Events.Is(r.Value):
		ev, err := schemas.Events.Decode(r.Value)
		if err != nil {
			return p.deadLetter(r, err), nil
		}
		return p.event(r, &ev, batch)
	case schemas.ConsentUpdates.Is(r.Value):
		u, err := schemas.ConsentUpdates.Decode(r.Value)
		if err != nil {
			return p.deadLetter(r, err), nil
		}
		return p.recordConsent(&u, batch, r.Partition)
	default:
		return p.deadLetter(r, schemas.ErrUnknownSchema), nil
	}
}

// event decides an event, unless its (user key, event id) was seen inside the dedup window: a
// resend gets no decision and no filtered record, only a duplicates record. Either way the id's
// new sighting goes to the dedup changelog in the same transaction (one record per partition,
// produced by processBatch).
func (p *Processor) event(r *kgo.Record, ev *schemas.Event, batch *stagedState) ([]*kgo.Record, error) {
	user := ev.UserKey()
	if ev.EventID == "" {
		st, err := p.stateAt(batch, r, user)
		if err != nil || !p.holding() {
			return p.decide(ev, st), err
		}
		return p.eventWithHold(r, ev, st, []byte(user), batch)
	}
	seen, dup, err := batch.sighting(r.Partition, user, ev.EventID, p.now().UnixMilli())
	if err != nil {
		return nil, err
	}
	key := []byte(user) // shared by the event's records: the producer only reads keys
	if dup {
		d := &schemas.Duplicate{EventID: ev.EventID, UserKey: user, FirstSeenMs: seen.FirstMs, LastSeenMs: seen.LastMs, Resends: int(seen.Resends)}
		return []*kgo.Record{encodeRecord(p.topics.duplicates, key, schemas.Duplicates, d)}, nil
	}
	st, err := p.stateAt(batch, r, user)
	if err != nil {
		return nil, err
	}
	if p.holding() {
		return p.eventWithHold(r, ev, st, key, batch)
	}
	return p.decideKeyed(ev, st, key), nil
}

// expireEvery is how often the stores drop whole day buckets past the dedup window.
const expireEvery = time.Hour

func (p *Processor) expire() {
	now := p.now()
	if now.Sub(p.expired) < expireEvery {
		return
	}
	p.expired = now
	p.state.mu.RLock()
	defer p.state.mu.RUnlock()
	for part, db := range p.state.parts {
		if err := db.Expire(now.UnixMilli()); err != nil {
			p.log.Warn("expiring remembered event ids", zap.Int32("partition", part), zap.Error(err))
		}
	}
}

// stateAt is the user's consent as the event at r must see it: the state in log order up to the
// event, plus every withdrawal or erasure later in the log that was acknowledged before now.
func (p *Processor) stateAt(batch *stagedState, r *kgo.Record, user string) (*consent.State, error) {
	u, known, err := batch.lookup(r.Partition, user)
	if err != nil {
		return nil, err
	}
	refused, erased := p.ahead.ahead(r.Partition, user, r.Offset)
	if refused&^u.refused() != 0 || (erased && !u.erased) {
		p.metrics.restrictedAhead.Inc()
	} else if !known {
		return nil, nil
	}
	return p.state.book.decisionState(u.refused()|refused, u.erased || erased), nil
}

func (p *Processor) decide(ev *schemas.Event, st *consent.State) []*kgo.Record {
	return p.decideKeyed(ev, st, []byte(ev.UserKey()))
}

// decideKeyed decides ev; key is the user key of its records: one decisions record with every
// destination's decision, and a filtered event per forwarded destination. One more slot is left
// for the caller's dedup changelog record.
func (p *Processor) decideKeyed(ev *schemas.Event, st *consent.State, key []byte) []*kgo.Record {
	outs := consent.Decide(ev, st, p.cfg.Policy, p.now(), "")
	return p.appendDecided(make([]*kgo.Record, 0, len(outs)+2), outs, key)
}

// decideFor appends the records of ev's decisions for the destinations only accepts (the
// pre-consent hold decides the rest later), each with heldMs (how long it waited; 0: not held).
func (p *Processor) decideFor(recs []*kgo.Record, ev *schemas.Event, st *consent.State, key []byte, only func(dest string) bool, heldMs int64) []*kgo.Record {
	return p.appendDecided(recs, waited(consent.DecideOnly(ev, st, p.cfg.Policy, p.now(), "", only), heldMs), key)
}

// waited sets how long the outcomes' event waited for its decision (held_ms).
func waited(outs []consent.Outcome, heldMs int64) []consent.Outcome {
	for i := range outs {
		outs[i].Decision.HeldMs = heldMs
	}
	return outs
}

// appendDecided appends the decisions record of outs and a filtered event per forwarded
// destination.
func (p *Processor) appendDecided(recs []*kgo.Record, outs []consent.Outcome, key []byte) []*kgo.Record {
	set := newDecisionRecord(p.topics.decisions, key, len(outs))
	for i := range outs {
		o := &outs[i]
		p.countDecision(&o.Decision)
		p.tally.decided(&o.Decision)
		set.add(&o.Decision)
		if o.Filtered != nil {
			recs = append(recs, encodeRecord(p.topics.destTopic(p.cfg, o.Decision.Destination), key, schemas.FilteredEvents, o.Filtered))
		}
	}
	return set.appendTo(recs)
}

// decisionRecord gathers one event's decisions into the one record of the decisions topic, a
// DecisionSet: a record per event instead of one per event and destination.
type decisionRecord struct {
	topic string
	key   []byte
	set   schemas.DecisionSet
	// loose are decisions the set refused (not sharing the event's fields, which the engine
	// never makes): each goes as a Decision record of its own, which the audit writer also
	// reads, rather than a panic that the same raw record would bring back after every restart.
	loose []*schemas.Decision
}

func newDecisionRecord(topic string, key []byte, destinations int) *decisionRecord {
	return &decisionRecord{topic: topic, key: key, set: schemas.DecisionSet{Destinations: make([]schemas.DestinationDecision, 0, destinations)}}
}

func (r *decisionRecord) add(d *schemas.Decision) {
	if r.set.Add(d) != nil {
		r.loose = append(r.loose, d)
	}
}

// appendTo appends the records to produce (none when no decision was added).
func (r *decisionRecord) appendTo(recs []*kgo.Record) []*kgo.Record {
	if len(r.set.Destinations) > 0 {
		recs = append(recs, encodeRecord(r.topic, r.key, schemas.DecisionSets, &r.set))
	}
	for _, d := range r.loose {
		recs = append(recs, encodeRecord(r.topic, r.key, schemas.Decisions, d))
	}
	return recs
}

// recordConsent stages the user's new consent state and writes it to the compacted changelog.
// The changelog has as many partitions as the raw topic and is keyed the same way, so a user's
// state lands on the partition number of their events and a processor restores exactly the
// users of the partitions it owns.
func (p *Processor) recordConsent(u *schemas.ConsentUpdate, batch *stagedState, partition int32) ([]*kgo.Record, error) {
	rec, err := batch.apply(partition, u)
	if err != nil {
		return nil, err
	}
	p.metrics.consentUpdates.Inc()
	recs := []*kgo.Record{encodeRecord(p.topics.state, []byte(u.UserKey), schemas.ConsentUpdates, rec)}
	if !p.holding() {
		return recs, nil
	}
	released, err := p.releaseByUpdate(batch, partition, u)
	return append(recs, released...), err
}

func (p *Processor) deadLetter(r *kgo.Record, cause error) []*kgo.Record {
	p.metrics.deadLettered.Inc()
	p.tally.poison++
	p.log.Warn("raw record dead-lettered", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(cause))
	return []*kgo.Record{{
		Topic: p.cfg.Topic(config.TopicRawDLQ),
		Key:   r.Key,
		Value: r.Value,
		Headers: []kgo.RecordHeader{
			{Key: config.HeaderError, Value: []byte(cause.Error())},
			{Key: config.HeaderOriginalTopic, Value: []byte(r.Topic)},
			{Key: config.HeaderOriginalPartition, Value: fmt.Appendf(nil, "%d", r.Partition)},
			{Key: config.HeaderOriginalOffset, Value: fmt.Appendf(nil, "%d", r.Offset)},
		},
	}}
}

// encodeRecord builds a record for one of our own schemas (Codec.MustEncode: only a programming
// error can fail it).
func encodeRecord[T any](topic string, key []byte, codec *schemas.Codec[T], v *T) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: key, Value: codec.MustEncode(v)}
}
