package delivery

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// ledgerStore is a destination's delivery ledger: the events its vendor accepted, so that no event is
// ever sent to it twice — across sink restarts, kill -9, rebalances, retry-topic rounds and dlq
// replay, and whichever process of the destination sends.
//
// The truth is the compacted topic <prefix>dest.<name>.ledger (key: event id), written with the
// audit records of the attempt and before the offsets are committed. Every sink process follows
// the whole topic into a local pebble store (a cache: the next offset of each partition is kept in
// the same batch as the entries it covers, so a restart reads only the topic's tail, and a missing
// store is rebuilt from the start). Before a request, sync waits until every entry committed by
// then is in the store, as the consent re-check does, then delivered filters the batch.
//
// Entries are keyed by the event's decision day: no event is sent later than the retry horizon
// after its decision, so whole days past it are dropped with one range deletion, never a scan,
// and memory does not grow with the events (pebble holds them on disk).
//
// The one gap left is between a vendor's 2xx and the ledger entry's acknowledgement (a kill -9
// there). Meta, TikTok, Google Ads and webhooks get the event id as their own dedup key on every
// request, so a resend in that window is harmless to them; GA4 has no such key, and
// tollgate_sink_ledger_window_seconds measures how long the window stays open.
type ledgerStore struct {
	topic   string
	db      *pebble.DB
	dir     string
	temp    bool // dir is this process's own: removed at Close
	horizon time.Duration
	follow  *kafka.Follower
	ready   chan struct{}
	log     *zap.Logger

	mu     sync.Mutex
	synced time.Time

	// bottom is set once the store has tables in its bottom level (L6): from then on the check
	// is a prefix seek, since pebble's Get never reads L6 bloom filters and nearly every check
	// is a miss (a new event). Before, Get is cheaper (no iterator to set up).
	bottom atomic.Bool

	// pending is the fetch being applied and next each partition's offset after it (apply,
	// commit: the follower's goroutine only).
	pending *pebble.Batch
	next    map[int32]int64
	key     []byte

	// writer marks the entries this store's process produces (header ledgerWriterHeader): they
	// are in the store already (remember), so reading them back from the topic writes only the
	// offset. Rewriting each one was a third of the ledger's store writes.
	writer []byte
}

// ledgerWriterHeader names the process (its ledger store) that produced a ledger entry.
const ledgerWriterHeader = "tollgate-ledger-writer"

// newWriterID is a random id for one ledger store's lifetime.
func newWriterID() []byte {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return []byte(hex.EncodeToString(b[:]))
}

// Keys in the store: "e" + decision day (4 bytes) + event id → delivered at (8 bytes), and
// "o" + partition (4 bytes) → the next topic offset to apply.
const (
	entryPrefix  = 'e'
	offsetPrefix = 'o'
)

// openLedgerStore opens the destination's local ledger store under dir (config delivery.ledger_dir;
// "" is a folder under the system temp dir). A store another process holds is not shared: this
// process then builds its own in a fresh folder.
func openLedgerStore(cfg *config.Config, dest string, log *zap.Logger) (*ledgerStore, error) {
	dir := cfg.Delivery.LedgerDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tollgate-ledger")
	}
	l := &ledgerStore{topic: cfg.Topic(config.LedgerTopic(dest)), horizon: cfg.Delivery.RetryHorizon,
		ready: make(chan struct{}), log: log, writer: newWriterID()}
	path := filepath.Join(dir, safeName(cfg.Topic(config.LedgerTopic(dest))))
	db, err := openStore(path, &l.bottom)
	if err != nil {
		// Most likely another sink of this destination on the same machine holds the lock.
		tmp, terr := os.MkdirTemp(dir, safeName(dest)+"-")
		if terr != nil {
			return nil, fmt.Errorf("delivery ledger %s: %w", path, errors.Join(err, terr))
		}
		log.Info("delivery ledger store in use; building a private one", zap.String("path", tmp), zap.Error(err))
		if db, err = openStore(tmp, &l.bottom); err != nil {
			return nil, fmt.Errorf("delivery ledger %s: %w", tmp, err)
		}
		path, l.temp = tmp, true
	}
	l.db, l.dir = db, path
	return l, nil
}

// Memory of one destination's ledger store: at most 40 MiB, its memtables included.
//
// Pebble counts memtables against the block cache: each one reserves its size in the cache until
// it is flushed, and one spare is kept for reuse, so the cache keeps only what is left. The 8 MiB
// cache this store had was wholly reserved by its one 8 MiB memtable: it never held a block, and
// every check read filter and index blocks from disk (BenchmarkLedgerCheckWhileWriting: 3.4 block
// reads and 171 KB allocated per check, 101 µs; 11 µs and 0.7 KB with the blocks cached). The
// cache is sized for blocks plus the memtables it will reserve (the mutable one, one being
// flushed, the spare).
//
// ledgerBlockCacheSize holds the filter and index blocks of every table of a ledger of a few
// million entries (10 bits of filter per entry).
const (
	ledgerMemTableSize   = 8 << 20
	ledgerBlockCacheSize = 16 << 20
	ledgerCacheSize      = ledgerBlockCacheSize + 3*ledgerMemTableSize
)

// openStore opens the pebble store at path; bottom is set once it has bottom-level tables.
func openStore(path string, bottom *atomic.Bool) (*pebble.DB, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(ledgerCacheSize)
	defer cache.Unref() // the store holds its own reference until it is closed
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: ledgerMemTableSize,
		Logger:       quietLogger{},
	}
	for i := range opts.Levels {
		// Nearly every check is a miss (a new event): bloom filters answer it without reading
		// a data block.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	bottomLevel := len(opts.Levels) - 1
	opts.EventListener = &pebble.EventListener{CompactionEnd: func(info pebble.CompactionInfo) {
		if info.Output.Level == bottomLevel && len(info.Output.Tables) > 0 {
			bottom.Store(true)
		}
	}}
	db, err := pebble.Open(path, opts)
	if err == nil && db.Metrics().Levels[bottomLevel].TablesCount > 0 {
		bottom.Store(true)
	}
	return db, err
}

// run reads the ledger topic into the store until ctx ends: from each partition's stored
// offset, or from its start.
func (l *ledgerStore) run(ctx context.Context, cfg *config.Config) error {
	f, err := kafka.NewFollower(cfg, l.log, l.topic, l.apply, kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	f.Batched(l.commit)
	defer f.Close()
	for tries := 1; ; tries++ {
		starts, err := l.starts(ctx, f.Client())
		if err == nil {
			err = f.Follow(ctx, starts)
		}
		if err == nil {
			break
		}
		if tries%10 == 0 {
			l.log.Warn("delivery ledger: cannot list its partitions; retrying", zap.Error(err))
		}
		if backoff.Sleep(ctx, 500*time.Millisecond) != nil {
			return nil
		}
	}
	l.follow = f
	close(l.ready)
	go l.expireDaily(ctx)
	f.Run(ctx)
	return nil
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

// apply stages one entry read from the topic; commit writes the staged entries of a fetch, with
// their partition's next offset, in one batch (the follower calls it before it counts them read).
func (l *ledgerStore) apply(r *kgo.Record) {
	if l.pending == nil {
		l.pending = l.db.NewBatch()
		l.next = make(map[int32]int64, 1)
	}
	l.next[r.Partition] = r.Offset + 1
	if l.writer != nil && bytes.Equal(kafka.HeaderBytes(r, ledgerWriterHeader), l.writer) {
		// Our own entry: remember stored it before it was produced, and earlier in the store's
		// log than this fetch's offset, so no crash can keep the offset and lose the entry.
		return
	}
	if e, err := schemas.LedgerEntries.Decode(r.Value); err == nil {
		l.key = entryKeyTo(l.key[:0], e.DecidedMs, e.EventID)
		_ = l.pending.Set(l.key, u64(uint64(e.DeliveredMs)), nil)
	} else {
		l.log.Warn("skipping undecodable ledger record", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
	}
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

// remember stores entries of events this process just had accepted, so its next request sees
// them without waiting for the follower to read them back from the topic.
func (l *ledgerStore) remember(entries []schemas.LedgerEntry) {
	if len(entries) == 0 {
		return
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		_ = b.Set(entryKey(e.DecidedMs, e.EventID), u64(uint64(e.DeliveredMs)), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		l.log.Warn("delivery ledger: store write failed", zap.Error(err))
	}
}

// sync returns once every entry committed to the topic before the call is in the store. A sync
// that started less than reuse ago counts. It waits through broker errors until ctx ends.
func (l *ledgerStore) sync(ctx context.Context, reuse time.Duration) error {
	select {
	case <-l.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	fresh := !l.synced.IsZero() && time.Since(l.synced) < reuse
	l.mu.Unlock()
	if fresh {
		return nil
	}
	started := time.Now()
	for {
		err := l.follow.CatchUp(ctx, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.log.Warn("delivery ledger: cannot list end offsets; holding sends", zap.Error(err))
		if err := backoff.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.synced = started
	l.mu.Unlock()
	return nil
}

// delivered reports whether the vendor already accepted the event.
func (l *ledgerStore) delivered(ev *schemas.FilteredEvent) bool {
	var buf [96]byte
	key := entryKeyTo(buf[:0], ev.DecidedMs, ev.EventID)
	if !l.bottom.Load() {
		_, closer, err := l.db.Get(key)
		if err != nil {
			return false
		}
		closer.Close()
		return true
	}
	it, err := l.db.NewIter(&entryIterOptions)
	if err != nil {
		return false
	}
	found := it.SeekPrefixGE(key)
	_ = it.Close()
	return found
}

// entryIterOptions reads the filters of every level, L6 included (pebble skips those by default).
var entryIterOptions = pebble.IterOptions{UseL6Filters: true}

// expireDaily drops, once at start and then hourly, the days of entries older than the retry
// horizon (plus a day): no event of those days can be sent any more.
func (l *ledgerStore) expireDaily(ctx context.Context) {
	for {
		cutoff := day(time.Now().Add(-l.horizon - 24*time.Hour).UnixMilli())
		if err := l.db.DeleteRange([]byte{entryPrefix}, dayPrefix(cutoff), pebble.NoSync); err != nil {
			l.log.Warn("delivery ledger: expiry failed", zap.Error(err))
		}
		if backoff.Sleep(ctx, time.Hour) != nil {
			return
		}
	}
}

// close closes the store (and removes a private one).
func (l *ledgerStore) close() error {
	err := l.db.Close()
	if l.temp {
		err = errors.Join(err, os.RemoveAll(l.dir))
	}
	return err
}

// entry is the ledger record of an event the vendor accepted.
func (l *ledgerStore) entry(e *schemas.LedgerEntry) *kgo.Record {
	b, err := schemas.LedgerEntries.Encode(e)
	if err != nil {
		panic(err) // our own well-typed record: a failure is a programming error
	}
	rec := &kgo.Record{Topic: l.topic, Key: []byte(e.EventID), Value: b}
	if l.writer != nil {
		rec.Headers = []kgo.RecordHeader{{Key: ledgerWriterHeader, Value: l.writer}}
	}
	return rec
}

func day(ms int64) uint32 { return uint32(max(ms, 0) / (24 * 3600 * 1000)) }

func dayPrefix(d uint32) []byte {
	k := []byte{entryPrefix, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[1:], d)
	return k
}

func entryKey(decidedMs int64, eventID string) []byte {
	return entryKeyTo(make([]byte, 0, 5+len(eventID)), decidedMs, eventID)
}

// entryKeyTo appends the entry's key to buf.
func entryKeyTo(buf []byte, decidedMs int64, eventID string) []byte {
	buf = append(buf, entryPrefix)
	buf = binary.BigEndian.AppendUint32(buf, day(decidedMs))
	return append(buf, eventID...)
}

func offsetKey(p int32) []byte {
	k := []byte{offsetPrefix, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[1:], uint32(p))
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// safeName turns a topic or destination name into a folder name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// quietLogger keeps pebble's informational chatter out of tollgate's logs; its errors still
// reach the caller through the API.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// ledgerWriter produces ledger entries as soon as a vendor's 2xx is in, rather than with the
// rest of the poll's records: the sooner an entry is acknowledged, the smaller the window in
// which a crash makes the event go out again.
type ledgerWriter struct {
	ledger *ledgerStore
	cl     *kgo.Client
	window prometheus.Observer // tollgate_sink_ledger_window_seconds of the destination

	mu  sync.Mutex
	err error // the first failed entry since the last flush

	// unacked counts entries produced and not yet acknowledged; since is when the last one was
	// acknowledged (or when entries began waiting with none outstanding): stalled reads them.
	unacked atomic.Int64
	since   atomic.Int64 // unix nanoseconds
}

// ledgerStall is how long Kafka may leave ledger entries unacknowledged before the sink stops
// sending one poll's events while the poll before still waits for its entries (stalled).
const ledgerStall = 500 * time.Millisecond

// stalled reports whether entries have waited for Kafka's acknowledgement for over ledgerStall
// (a broker failing over, say). Every event sent meanwhile is in the window in which a crash
// makes it go out again, so the runner then lets only one poll be on its way, not two.
func (w *ledgerWriter) stalled() bool {
	return w.unacked.Load() > 0 && time.Since(time.Unix(0, w.since.Load())) > ledgerStall
}

// accepted records the events of one request's outcomes that the vendor took (answered: when
// its answer came): in the local store at once, in one write for the request, so a later batch
// of this process never sends them again; then on the topic (for other processes and restarts),
// each entry as soon as Kafka acknowledges it. Each event's deliveries audit row (audit) is
// produced right before its entry, in the same produce request, not with the rest of the poll's
// records: an event the ledger holds is never sent again, so a row held back until the poll
// ends would be lost for good if the sink died first (make chaos found 11,156 such events after
// a kill -9 with two polls in flight).
func (w *ledgerWriter) accepted(outs []outcome, answered time.Time, audit func(outcome) *kgo.Record) {
	var entries []schemas.LedgerEntry
	var rows []*kgo.Record
	for _, o := range outs {
		if o.status == StatusDelivered {
			entries = append(entries, schemas.LedgerEntry{EventID: o.it.ev.EventID, DecidedMs: o.it.ev.DecidedMs,
				DeliveredMs: answered.UnixMilli(), Attempt: o.attempt})
			rows = append(rows, audit(o))
		}
	}
	if len(entries) == 0 {
		return
	}
	w.ledger.remember(entries)
	if w.unacked.Add(int64(len(entries))) == int64(len(entries)) {
		w.since.Store(time.Now().UnixNano()) // none were outstanding: the wait starts now
	}
	acked := func(_ *kgo.Record, err error) {
		w.unacked.Add(-1)
		w.since.Store(time.Now().UnixNano())
		if err != nil {
			w.failed(err)
			return
		}
		w.window.Observe(time.Since(answered).Seconds())
	}
	rowStored := func(_ *kgo.Record, err error) {
		if err != nil {
			w.failed(err)
		}
	}
	for i := range entries {
		w.cl.Produce(context.Background(), rows[i], rowStored)
		w.cl.Produce(context.Background(), w.ledger.entry(&entries[i]), acked)
	}
}

// failed keeps the first error of an entry or row since the last flush, which returns it.
func (w *ledgerWriter) failed(err error) {
	w.mu.Lock()
	w.err = cmp.Or(w.err, err)
	w.mu.Unlock()
}

// flush waits until every entry produced so far is acknowledged; it returns the first failure,
// so the caller does not commit offsets past an event whose entry is not stored.
func (w *ledgerWriter) flush(ctx context.Context) error {
	if err := w.cl.Flush(ctx); err != nil {
		return fmt.Errorf("store ledger entries: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	w.err = nil
	if err != nil {
		return fmt.Errorf("store ledger entries: %w", err)
	}
	return nil
}

// startLedger opens the destination's ledger, follows its topic and starts its writer; stop
// undoes it all. Both the runner and the DLQ replayer deliver through it.
func (r *Runner) startLedger(ctx context.Context, g *errgroup.Group) (stop func(), err error) {
	open := openLedgerStore
	if r.privateLedger {
		open = openPrivateLedgerStore // a repair's (repair.go)
	}
	l, err := open(r.cfg, r.dest.Name, r.log)
	if err != nil {
		return nil, err
	}
	cl, err := kafka.NewClient(r.cfg, r.log, kgo.DefaultProduceTopic(l.topic))
	if err != nil {
		l.close()
		return nil, err
	}
	r.ledger = &ledgerWriter{ledger: l, cl: cl, window: ledgerWindow.WithLabelValues(r.dest.Name)}
	g.Go(func() error { return l.run(ctx, r.cfg) })
	return func() {
		cl.Close()
		if err := l.close(); err != nil {
			r.log.Warn("delivery ledger: close", zap.Error(err))
		}
	}, nil
}
