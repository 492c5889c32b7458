package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

const (
	// finalFlushTimeout bounds the last insert and commit when Run's context ends, and the flush
	// before partitions are given up in a rebalance. A whole process has 10 s to stop; what
	// cannot be written in this time stays uncommitted and is read again later.
	finalFlushTimeout = 5 * time.Second
	// attemptTimeout bounds one insert attempt, so a server that accepts connections but never
	// answers cannot hold the buffer lock past the group's rebalance timeout (60 s).
	attemptTimeout = 30 * time.Second
)

// A fetch of the audit topics returns once fetchBytes are there or fetchWait has passed: a
// quarter of the flush interval, at most 250 ms, at least 1 ms.
const fetchBytes = 1 << 20

func fetchWait(flush time.Duration) time.Duration {
	return min(max(flush/4, time.Millisecond), 250*time.Millisecond)
}

// retryBackoff spaces the attempts while ClickHouse fails (connect and insert), with "equal"
// jitter (backoff.Policy.Equal) so several writers do not retry in step and none hammers a
// server that is down.
var retryBackoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// Writer consumes the audit topics and writes them to ClickHouse. See Run.
type Writer struct {
	cfg   *config.Config
	log   *zap.Logger
	group string

	batchSize     int
	flushInterval time.Duration
	retention     config.Retention
	decisions     string // topic names
	deliveries    string
	duplicates    string
	state         string
	parked        string // where rows ClickHouse refuses for good go (park.go)
	// journals are the destinations' delivery journals (dest.<name>.ledger): each request's
	// outcome there is its deliveries rows.
	journals map[string]bool

	// erased holds the SHA-256 of every erased user key this writer knows of (see
	// filterErased); erasedSince is the server time to read new erasures from.
	erased      map[[32]byte]struct{}
	erasedSince time.Time
	// afterInsert, if set, runs after a batch's inserts and before its commit (tests crash there).
	afterInsert func()
	// kafkaOpts are extra client options (tests shorten the session timeout of a writer they kill).
	kafkaOpts []kgo.Opt

	db *DB
	cl *kgo.Client

	// mu guards buf and fanout: Run's loop and the rebalance callbacks (another goroutine) both
	// flush it.
	mu  sync.Mutex
	buf buffer
	// fanout is the most rows one record has given so far (a decision set gives a row per
	// destination, a journal outcome a row per event of its request): a poll asks for as many
	// records as leave the batch within batchSize rows.
	fanout int
}

type topicPartition struct {
	topic     string
	partition int32
}

// buffer holds what was polled but is not committed yet.
type buffer struct {
	decisions   []schemas.Decision
	decisionSrc []source // where each decision came from: a decision set's rows share theirs
	deliveries  []schemas.Delivery
	deliverySrc []source
	dups        []schemas.Duplicate
	dupSrc      []source
	erasures    []string // user keys erased (consent-state records with Erased set)
	erasureSrc  []source
	// offsets is the offset to commit per partition once the rows above are inserted: one past
	// the last record polled, decodable or not (a skipped poison record is done with too). It
	// outlives a failed commit, to be retried with the next flush.
	offsets map[topicPartition]kgo.EpochOffset
	// since is when the oldest uncommitted record was polled; FlushInterval counts from it.
	since time.Time
}

func (b *buffer) rows() int {
	return len(b.decisions) + len(b.deliveries) + len(b.dups) + len(b.erasures)
}

func (b *buffer) pending() bool { return len(b.offsets) > 0 }

// drop forgets the records of the given partitions (revoked or lost: their next owner reads
// them again from the last commit).
func (b *buffer) drop(parts map[string][]int32) {
	gone := map[topicPartition]bool{}
	for t, ps := range parts {
		for _, p := range ps {
			gone[topicPartition{t, p}] = true
			delete(b.offsets, topicPartition{t, p})
		}
	}
	b.decisions, b.decisionSrc = keep(b.decisions, b.decisionSrc, gone)
	b.deliveries, b.deliverySrc = keep(b.deliveries, b.deliverySrc, gone)
	b.dups, b.dupSrc = keep(b.dups, b.dupSrc, gone)
	b.erasures, b.erasureSrc = keep(b.erasures, b.erasureSrc, gone)
	if !b.pending() {
		b.since = time.Time{}
	}
}

func keep[T any](rows []T, src []source, gone map[topicPartition]bool) ([]T, []source) {
	n := 0
	for i := range rows {
		if !gone[src[i].tp] {
			rows[n], src[n] = rows[i], src[i]
			n++
		}
	}
	clear(rows[n:])
	clear(src[n:])
	return rows[:n], src[:n]
}

// reset empties rows and src, dropping references to the strings and record values.
func reset[T any](rows []T, src []source) ([]T, []source) {
	clear(rows)
	clear(src)
	return rows[:0], src[:0]
}

// New returns a writer for the configured ClickHouse and audit topics. A BatchSize or
// FlushInterval of zero takes the config defaults (50000 rows, 1 s); a zero
// Retention.Interval (config.Load sets 1h) runs no retention job.
func New(cfg *config.Config, log *zap.Logger) *Writer {
	w := &Writer{
		cfg:           cfg,
		log:           log.Named("audit"),
		group:         cfg.AuditGroup(),
		batchSize:     cfg.ClickHouse.BatchSize,
		flushInterval: cfg.ClickHouse.FlushInterval,
		retention:     cfg.ClickHouse.Retention,
		decisions:     cfg.Topic(config.TopicDecisions),
		deliveries:    cfg.Topic(config.TopicDeliveries),
		duplicates:    cfg.Topic(config.TopicDuplicates),
		state:         cfg.Topic(config.TopicState),
		parked:        cfg.Topic(config.TopicAuditParked),
		erased:        map[[32]byte]struct{}{},
		journals:      map[string]bool{},
	}
	if cfg.Policy != nil {
		for _, name := range cfg.Policy.Names {
			w.journals[cfg.Topic(config.LedgerTopic(name))] = true
		}
	}
	if w.batchSize <= 0 {
		w.batchSize = 50000
	}
	if w.flushInterval <= 0 {
		w.flushInterval = time.Second
	}
	w.buf.offsets = map[topicPartition]kgo.EpochOffset{}
	return w
}

// Run connects to ClickHouse (waiting for it if it is down), applies the migrations, then
// consumes the decisions and deliveries topics in consumer group cfg.AuditGroup() until ctx ends.
//
// Only committed Kafka transactions are read (the consent processor writes decisions
// transactionally). Rows are inserted in batches of up to BatchSize rows, at least every
// FlushInterval, and a batch's offsets are committed only after its insert succeeded, so a crash
// at any moment loses nothing: at worst rows are inserted twice, and copies collapse under
// SELECT ... FINAL. A record that does not decode is logged (topic, partition, offset) and
// skipped. While ClickHouse fails, the batch is kept and retried with backoff, nothing is
// committed and no more records are polled; rows ClickHouse refuses for good (see permanent) are
// parked instead (park.go) and the rest of the batch is inserted. When ctx ends Run makes a last
// flush and commit (bounded by a few seconds) and returns nil; it returns an error only for what
// retrying cannot fix (a bad database name, audit tables with the wrong columns, an unusable
// Kafka config).
// Call Run once per Writer.
func (w *Writer) Run(ctx context.Context) error {
	if err := checkDatabase(w.cfg.ClickHouse.Database); err != nil {
		return fmt.Errorf("clickhouse.database: %w", err)
	}
	db, err := w.connect(ctx)
	if err != nil {
		return err
	}
	if db == nil { // ctx ended while waiting for ClickHouse
		return nil
	}
	defer db.Close()
	w.db = db

	cl, err := kafka.NewClient(w.cfg, w.log, append([]kgo.Opt{
		kgo.ConsumerGroup(w.group),
		kgo.ConsumeTopics(append([]string{w.decisions, w.deliveries, w.duplicates, w.state}, slices.Collect(maps.Keys(w.journals))...)...),
		// A new group starts at the beginning: the audit trail must hold every decision.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Rows wait up to flush_interval for their insert anyway: a fetch may wait for a
		// share of it too. Without the wait, at a trickle the broker answered a fetch for every
		// transaction the processor and the sinks committed.
		kgo.FetchMinBytes(fetchBytes),
		kgo.FetchMaxWait(fetchWait(w.cfg.ClickHouse.FlushInterval)),
		kgo.DisableAutoCommit(),
		// Rebalance callbacks run only between our polls, never while a batch polled under the
		// old assignment is being processed; see flushRetrying for how an outage lets them in.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(w.onRevoked),
		kgo.OnPartitionsLost(w.onLost),
	}, w.kafkaOpts...)...)
	if err != nil {
		return err
	}
	w.cl = cl
	defer cl.Close() // leaves the group; onRevoked then finds nothing left to flush

	w.log.Info("audit writer started", zap.String("clickhouse", w.cfg.ClickHouse.Addr),
		zap.String("server_version", db.Version), zap.String("database", db.Database),
		zap.Strings("topics", []string{w.decisions, w.deliveries, w.duplicates, w.state}), zap.String("group", w.group))
	var jobs sync.WaitGroup
	jobs.Go(func() { w.runRetention(ctx) })
	jobs.Go(func() { w.runCounts(ctx) })
	w.consume(ctx)
	w.finalFlush()
	jobs.Wait()
	return nil
}

// connect opens ClickHouse and migrates, retrying while it fails (e.g. the server is still
// starting). It returns nil, nil if ctx ends first, and an error only for a schema mismatch.
func (w *Writer) connect(ctx context.Context) (*DB, error) {
	var first time.Time
	for attempt := 1; ; attempt++ {
		db, err := Open(ctx, w.cfg)
		if err == nil {
			if err = db.Migrate(ctx); err == nil {
				if !first.IsZero() {
					w.log.Info("clickhouse is reachable again", zap.Duration("after", time.Since(first)))
				}
				return db, nil
			}
			_ = db.Close()
			var se *schemaError
			if errors.As(err, &se) {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if first.IsZero() {
			first = time.Now()
			w.log.Warn("cannot reach clickhouse; retrying until it answers", zap.String("addr", w.cfg.ClickHouse.Addr), zap.Error(err))
		}
		if backoff.Sleep(ctx, retryBackoff.Equal(attempt)) != nil {
			return nil, nil
		}
	}
}

// consume is the poll loop. It returns when ctx ends.
func (w *Writer) consume(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		room := (w.batchSize - w.buf.rows()) / max(w.fanout, 1)
		pending, since := w.buf.pending(), w.buf.since
		w.mu.Unlock()

		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if pending {
			pollCtx, cancel = context.WithDeadline(ctx, since.Add(w.flushInterval))
		}
		fetches := w.cl.PollRecords(pollCtx, max(room, 1))
		cancel()
		if fetches.IsClientClosed() {
			return
		}

		fetchErrs := 0
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			fetchErrs++
			countError(errFetch)
			w.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
		})
		w.mu.Lock()
		fetches.EachRecord(w.add)
		full := w.buf.rows() >= w.batchSize
		due := w.buf.pending() && !time.Now().Before(w.buf.since.Add(w.flushInterval))
		w.mu.Unlock()

		if ctx.Err() != nil {
			return // finalFlush takes what was polled
		}
		if full || due {
			w.flushRetrying(ctx)
		}
		w.cl.AllowRebalance()
		if fetchErrs > 0 && fetches.NumRecords() == 0 {
			_ = backoff.Sleep(ctx, time.Second) // a persistent fetch error must not turn into a busy loop
		}
	}
}

// add buffers one polled record. The caller holds mu.
func (w *Writer) add(r *kgo.Record) {
	tp := topicPartition{r.Topic, r.Partition}
	src := source{tp: tp, offset: r.Offset, key: r.Key, value: r.Value}
	w.buf.offsets[tp] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	received.Inc()
	if w.buf.since.IsZero() {
		w.buf.since = time.Now()
	}
	var err error
	switch r.Topic {
	case w.decisions:
		// A decision set (one record per event) becomes a row per destination, each with the
		// record as its source; a per-destination record written before sets is one row.
		n := len(w.buf.decisions)
		if w.buf.decisions, err = schemas.DecodeDecisions(w.buf.decisions, r.Value); err == nil {
			rows := len(w.buf.decisions) - n
			for range rows {
				w.buf.decisionSrc = append(w.buf.decisionSrc, src)
			}
			w.fanout = max(w.fanout, rows)
		}
	case w.deliveries:
		var d schemas.Delivery
		if d, err = schemas.Deliveries.Decode(r.Value); err == nil {
			w.buf.deliveries = append(w.buf.deliveries, d)
			w.buf.deliverySrc = append(w.buf.deliverySrc, src)
		}
	case w.duplicates:
		var d schemas.Duplicate
		if d, err = schemas.Duplicates.Decode(r.Value); err == nil {
			w.buf.dups = append(w.buf.dups, d)
			w.buf.dupSrc = append(w.buf.dupSrc, src)
		}
	case w.state:
		// The compacted consent-state changelog: the full merged state of one user per record.
		// Only erasures matter here; a compacted-away tombstone (nil value) is nothing to do.
		if r.Value == nil {
			return
		}
		var u schemas.ConsentUpdate
		if u, err = schemas.ConsentUpdates.Decode(r.Value); err == nil && u.Erased {
			w.buf.erasures = append(w.buf.erasures, u.UserKey)
			w.buf.erasureSrc = append(w.buf.erasureSrc, src)
		}
	default:
		if !w.journals[r.Topic] {
			err = errors.New("not an audit topic")
			break
		}
		err = w.addOutcome(r, src)
	}
	if err != nil {
		// Skipped, and committed with the batch: a poison record must never stall a partition.
		// The value is not logged: it may hold personal data.
		countError(errDecode)
		countDiscarded(discardInvalid, 1)
		w.log.Warn("skipping an audit record that does not decode", zap.String("topic", r.Topic),
			zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
	}
}

// addOutcome buffers the deliveries rows of a journal record (one per event of a request's
// outcome; none for an intent, nor for a LedgerEntry from before the journal, whose row came
// through the deliveries topic). The caller holds mu.
func (w *Writer) addOutcome(r *kgo.Record, src source) error {
	if r.Value == nil || !schemas.Journal.Is(r.Value) {
		return nil
	}
	j, err := schemas.Journal.Decode(r.Value)
	rows := j.Deliveries()
	for _, d := range rows {
		w.buf.deliveries = append(w.buf.deliveries, d)
		w.buf.deliverySrc = append(w.buf.deliverySrc, src)
	}
	w.fanout = max(w.fanout, len(rows)) // an outcome is a row per event of its request
	return err
}

// flushRetrying flushes until it succeeds or ctx ends. While ClickHouse fails it keeps the batch
// and commits nothing, and it does not poll (so memory stays bounded by one batch), but it allows
// rebalances between attempts: a member that blocked them for longer than the rebalance timeout
// would be thrown out of the group. A revocation meanwhile runs onRevoked, which makes one attempt
// of its own and otherwise hands the revoked partitions' records back to Kafka.
func (w *Writer) flushRetrying(ctx context.Context) {
	var (
		failedAt time.Time
		attempts int
	)
	for {
		w.mu.Lock()
		rows := w.buf.rows()
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := w.flushLocked(actx)
		cancel()
		w.mu.Unlock()
		if err == nil {
			if attempts > 0 {
				w.log.Info("clickhouse insert succeeded again", zap.Int("failed_attempts", attempts),
					zap.Duration("after", time.Since(failedAt)))
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		attempts++
		countError(errTransient)
		if attempts == 1 { // once per failure streak; the recovery is logged too
			failedAt = time.Now()
			w.log.Warn("clickhouse insert failed; keeping the batch and retrying until it succeeds",
				zap.Int("rows", rows), zap.Error(err))
		}
		w.cl.AllowRebalance()
		if backoff.Sleep(ctx, retryBackoff.Equal(attempts)) != nil {
			return
		}
	}
}

// flushLocked inserts the buffered rows and applies the buffered erasures, then commits the
// offsets of every record they came from. It returns an insert, parking or erasure error; a commit error
// is only logged (the rows are in ClickHouse, the offsets are kept and go with the next commit,
// and at worst the records are read and inserted again after a restart, which FINAL absorbs).
// Every step is idempotent, so a failed flush is simply retried whole. The caller holds mu.
func (w *Writer) flushLocked(ctx context.Context) error {
	b := &w.buf
	if len(b.decisions) > 0 {
		if err := w.refreshErased(ctx); err != nil {
			return err
		}
		keep, src := w.filterErased(b.decisions, b.decisionSrc)
		if err := insertOrPark(ctx, "decisions", keep, src, w.db.InsertDecisions, w.parker("decisions")); err != nil {
			return err
		}
		if err := w.eraseLateArrivals(ctx, keep); err != nil {
			return err
		}
		countDiscarded(discardErased, len(b.decisions)-len(keep))
		// Done with: a retry of a later step must not insert or park these again.
		b.decisions, b.decisionSrc = reset(b.decisions, b.decisionSrc)
	}
	if len(b.deliveries) > 0 {
		if err := insertOrPark(ctx, "deliveries", b.deliveries, b.deliverySrc, w.db.InsertDeliveries, w.parker("deliveries")); err != nil {
			return err
		}
		b.deliveries, b.deliverySrc = reset(b.deliveries, b.deliverySrc)
	}
	if len(b.dups) > 0 {
		// Before the erasures: an erased user's resends polled in this batch go with the rest;
		// those of users erased earlier are dropped like their late decisions.
		if err := w.refreshErased(ctx); err != nil {
			return err
		}
		keep, src := dropErased(w, b.dups, b.dupSrc)
		if err := insertOrPark(ctx, "duplicates", keep, src, w.db.InsertDuplicates, w.parker("duplicates")); err != nil {
			return err
		}
		b.dups, b.dupSrc = reset(b.dups, b.dupSrc)
	}
	// Erasures after the inserts: a user's rows polled in this batch are deleted with the rest.
	// An erasure is never parked: its statements are fixed and the user key a bound parameter,
	// so only a server or schema fault can fail it, and giving up a deletion the law asks for is
	// worse than waiting for the fix.
	for _, user := range b.erasures {
		if err := w.db.EraseUser(ctx, user); err != nil {
			return err
		}
		w.erased[sha256.Sum256([]byte(user))] = struct{}{}
		w.log.Info("erased a user's audit rows") // no user key: the log must not name them
	}
	if w.afterInsert != nil {
		w.afterInsert()
	}
	b.erasures, b.erasureSrc = reset(b.erasures, b.erasureSrc)
	batchesWritten.Inc()
	if b.pending() {
		if err := w.commit(ctx, b.offsets); err != nil {
			if ctx.Err() == nil { // else Run is stopping, and finalFlush commits again
				countError(errCommit)
				w.log.Warn("offset commit failed; retrying with the next batch", zap.Error(err))
			}
			return nil
		}
		clear(b.offsets)
	}
	b.since = time.Time{}
	return nil
}

// commit commits offsets synchronously and reports the first failure, whole-request or
// per-partition.
func (w *Writer) commit(ctx context.Context, offsets map[topicPartition]kgo.EpochOffset) error {
	req := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range offsets {
		if req[tp.topic] == nil {
			req[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		req[tp.topic][tp.partition] = o
	}
	var cerr error
	w.cl.CommitOffsetsSync(ctx, req, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return cerr
}

// finalFlush is the last insert and commit when Run's context has ended. What it cannot write
// within finalFlushTimeout stays uncommitted and is read again at the next start.
func (w *Writer) finalFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	rows := w.buf.rows()
	for attempt := 1; ; attempt++ {
		err := w.flushLocked(ctx)
		if err == nil {
			break
		}
		if backoff.Sleep(ctx, retryBackoff.Equal(attempt)) != nil {
			w.log.Warn("final clickhouse insert failed; the records stay uncommitted and are read again at the next start",
				zap.Int("rows", rows), zap.Error(err))
			w.buf.drop(w.buf.partitions())
			break
		}
	}
	w.cl.AllowRebalance()
}

// partitions returns every partition with uncommitted records.
func (b *buffer) partitions() map[string][]int32 {
	m := map[string][]int32{}
	for tp := range b.offsets {
		m[tp.topic] = append(m[tp.topic], tp.partition)
	}
	return m
}

// onRevoked runs before partitions go to another member: the last moment their offsets can be
// committed. One bounded flush attempt; whatever it cannot write is handed back uncommitted.
func (w *Writer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.pending() {
		ctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
		err := w.flushLocked(ctx)
		cancel()
		if err != nil {
			w.log.Warn("clickhouse insert before a rebalance failed; the revoked partitions' records stay uncommitted for their next owner",
				zap.Error(err))
		}
	}
	w.buf.drop(revoked) // whatever is left of them (rows, or offsets whose commit failed)
}

// onLost runs when the partitions are already gone (e.g. the member was fenced): commits would
// fail, so their records are just dropped for the new owner to read.
func (w *Writer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.drop(lost)
}
