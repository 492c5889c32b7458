package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Delivery statuses recorded in the deliveries audit table (docs/audit.md).
const (
	StatusDelivered    = "delivered"
	StatusRetrying     = "retrying"
	StatusDeadLettered = "dead_lettered"
	StatusBlocked      = "blocked"
	// StatusInDoubt: the request was sent (or may have been) and its outcome is unknown
	// (CONTRACT §9, doubt.go).
	StatusInDoubt = "in_doubt"
)

const (
	// shutdownGrace is how long a request in flight at shutdown may still take, so its outcome
	// is recorded. A component exits within 10 s of SIGTERM (README, "Commands"): this leaves
	// room for the audit records and the final offset commit after it.
	shutdownGrace = 5 * time.Second
	// consentSyncReuse: a consent-state catch-up this recent counts for the next request.
	consentSyncReuse = 100 * time.Millisecond
)

// Runner delivers one destination's events to its vendor. Each destination has its own runner,
// consumer groups, Kafka clients, HTTP connection pool, rate limiter and circuit breaker, so a
// slow or failing vendor holds up only itself. A runner runs two consumers and two followers:
//
//   - the main consumer reads <prefix>dest.<name>, sends each event once, and hands temporary
//     failures to <prefix>dest.<name>.retry: it never waits for a retry, so the partition moves;
//   - the retry consumer reads the retry topic, pausing each partition until its first record
//     is due, and sends again (with the same hand-off after a failure);
//   - the consent follower keeps the users' withdrawals and erasures (Withdrawals), checked
//     right before every request;
//   - the journal follower keeps the events the vendor already accepted (ledger.go), also
//     checked right before every request, so no event is sent twice; each request is written
//     to the destination's delivery journal before it is sent and after it is answered.
//
// Offsets are committed only once each event of a poll is delivered, blocked, dead-lettered,
// settled in doubt or stored on the retry topic, and its journal outcomes and audit records are
// stored.
type Runner struct {
	cfg     *config.Config
	dest    *policy.Destination
	adapter sdk.Adapter
	http    *http.Client
	log     *zap.Logger
	now     func() time.Time
	horizon time.Duration
	limiter *rate.Limiter
	breaker *breaker
	consent *Withdrawals
	journal *journal // the delivery journal and ledger; set by Run (or the replayer) before any send
	// privateLedger, if set, gives the runner a ledger store of its own that never expires and
	// keeps only what the scope names (a repair's).
	privateLedger *storeScope
	// inflight is the events being sent now, by any of the runner's flights; doubts the
	// partitions whose requests in doubt are settled.
	inflight inflight
	doubts   doubts
	// concurrency is how many requests may be in flight at once (delivery.concurrency).
	concurrency int
	// mainSlots and retrySlots hold a token per lane sending, at most concurrency each: the
	// main consumer's flights share one set, the retry consumer's (and a replay's) the other, so
	// retry lanes waiting for an open breaker never hold up the main consumer, which moves its
	// events to the retry topic meanwhile.
	mainSlots, retrySlots chan struct{}
	counters              passCounters
}

// NewRunner returns the runner of one destination.
func NewRunner(cfg *config.Config, dest *policy.Destination, adapter sdk.Adapter, log *zap.Logger) *Runner {
	r := &Runner{
		cfg: cfg, dest: dest, adapter: adapter,
		http:    sdk.NewHTTPClient(dest, sdk.RequestTimeout(adapter, cfg.Delivery.Timeout), cfg.Delivery.Concurrency),
		log:     log.Named("sink").With(zap.String("destination", dest.Name)),
		now:     time.Now,
		horizon: cfg.Delivery.RetryHorizon,
		limiter: newLimiter(cfg, dest),
		consent: NewWithdrawals(cfg.Delivery.RetryHorizon),

		concurrency: max(cfg.Delivery.Concurrency, 1),
		counters:    newPassCounters(dest.Name),
	}
	r.mainSlots, r.retrySlots = make(chan struct{}, r.concurrency), make(chan struct{}, r.concurrency)
	if tr, ok := r.http.Transport.(*http.Transport); ok {
		// Keep a connection per request slot, so concurrent requests do not dial anew each time.
		tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, r.concurrency)
	}
	r.breaker = newBreaker(dest.Name, cfg.Delivery.BreakerFailures, cfg.Delivery.BreakerOpen, func() time.Time { return r.now() })
	return r
}

// newLimiter is the destination's rate limit: config.rate_limit (requests per second) when the
// destination sets one, else delivery.rate_limit; 0 is no limit.
func newLimiter(cfg *config.Config, dest *policy.Destination) *rate.Limiter {
	perSec := cfg.Delivery.RateLimit
	if v, ok := sdk.RateLimit(dest); ok {
		perSec = v
	}
	if perSec <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSec), cfg.Delivery.RateBurst)
}

// Run delivers until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	r.log.Info("sink started", zap.String("type", r.dest.Type))
	g, ctx := errgroup.WithContext(ctx)
	stopLedger, err := r.startLedger(ctx, g)
	if err != nil {
		return err
	}
	defer stopLedger()
	g.Go(func() error { return r.consent.Follow(ctx, r.cfg, r.log) })
	g.Go(func() error { return r.runMain(ctx) })
	g.Go(func() error { return r.runRetries(ctx) })
	return g.Wait()
}

// groupConsumer is a consumer of topic in group that commits by hand (after the outcomes are
// stored) and keeps a rebalance waiting while polled records are handled; rebalanceWanted is
// signalled when a rebalance is waiting for AllowRebalance. close allows the rebalance first:
// with BlockRebalanceOnPoll, leaving the group waits for it.
func (r *Runner) groupConsumer(group, topic, source string) (cl *kgo.Client, close func(), rebalanceWanted <-chan struct{}, err error) {
	wanted := make(chan struct{}, 1)
	// A partition that leaves has its requests in doubt searched again when it comes back:
	// another sink may have written intents of it meanwhile.
	gone := func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
		r.doubts.forget(source, parts[topic])
	}
	cl, err = kafka.NewClient(r.cfg, r.log,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(gone),
		kgo.OnPartitionsLost(gone),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			select {
			case wanted <- struct{}{}:
			default:
			}
		}),
	)
	if err != nil {
		return nil, nil, nil, err
	}
	return cl, func() { cl.AllowRebalance(); cl.Close() }, wanted, nil
}

// runMain consumes the destination's topic. Polls overlap: while one poll's events are sent,
// the next poll's are already on their way (launch keeps each user's events in order across
// them), and a poll's outcomes are stored and its offsets committed only after every earlier
// poll's. A rebalance is allowed only with nothing in flight: when the topic has gone quiet, or
// as soon as one is waiting (the in-flight polls are then finished first).
func (r *Runner) runMain(ctx context.Context) error {
	topic := r.cfg.Topic(config.DestTopic(r.dest.Name))
	cl, closeClient, rebalanceWanted, err := r.groupConsumer(r.cfg.SinkGroup(r.dest.Name), topic, sourceMain)
	if err != nil {
		return err
	}
	defer closeClient()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var prev *polled // sent, not yet stored and committed
	finish := func() error {
		if prev == nil {
			return nil
		}
		p := prev
		prev = nil
		return r.finish(ctx, cl, p)
	}
	for {
		pollCtx, stopPoll := ctx, context.CancelFunc(func() {})
		if prev != nil {
			// Do not sit in the poll once the previous one is sent: its outcomes are to be stored.
			pollCtx, stopPoll = context.WithCancel(ctx)
			go func(done <-chan struct{}) {
				select {
				case <-done:
				case <-pollCtx.Done():
				}
				stopPoll()
			}(prev.f.done)
		}
		fetches := cl.PollRecords(pollCtx, r.pollSize())
		stopPoll()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return finish()
		}
		r.logFetchErrors(fetches)
		var cur *polled
		if recs := fetches.Records(); len(recs) > 0 {
			if prev != nil && r.journal.stalled() {
				// Kafka is slow to take journal outcomes: let the poll before settle first, so
				// no more events are in doubt should the sink crash than one poll's.
				if err := finish(); err != nil {
					return err
				}
			}
			var after *flight
			if prev != nil {
				after = prev.f
			}
			cur = r.begin(sendCtx, sourceMain, recs, false, after, r.mainSlots)
		}
		if err := finish(); err != nil {
			if cur != nil {
				stopSending() // its events are deferred unsent; nothing of it is committed
				cur.f.wait()
			}
			return err
		}
		prev = cur
		select {
		case <-rebalanceWanted:
		default:
			if prev != nil {
				continue
			}
		}
		if err := finish(); err != nil {
			return err
		}
		cl.AllowRebalance()
	}
}

// pollSize is the most records one poll takes: ten requests' worth, and with concurrency at
// least enough for lanesPerWorker small requests per request slot (bounded, so a poll of small
// events stays a few MB; two polls are in flight at most), so every request slot has lanes to take.
func (r *Runner) pollSize() int {
	mb := r.adapter.MaxBatch()
	return max(10*mb, min(4*lanesPerWorker*r.concurrency*mb, maxPollRecords))
}

// maxPollRecords bounds pollSize's concurrency term.
const maxPollRecords = 8192

// polled is one poll's records on their way to the vendor.
type polled struct {
	recs []*kgo.Record
	bad  []*kgo.Record // dead-letter records of the undecodable ones
	f    *flight
}

// handle delivers one poll's records, stores what came of them, and commits their offsets.
func (r *Runner) handle(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, waitBreaker bool) error {
	return r.finish(ctx, cl, r.begin(ctx, sourceRetry, recs, waitBreaker, nil, r.retrySlots))
}

// begin decodes a poll's records and launches their delivery (source, after, slots: see
// launch), once the requests in doubt of the partitions they come from are settled.
func (r *Runner) begin(ctx context.Context, source string, recs []*kgo.Record, waitBreaker bool, after *flight, slots chan struct{}) *polled {
	p := &polled{recs: recs}
	if err := r.settleDoubts(ctx, source, partitions(recs)); err != nil && ctx.Err() == nil {
		r.log.Warn("delivery journal: cannot search for requests in doubt", zap.Error(err))
	}
	items := make([]*item, 0, len(recs))
	metrics.Received.WithLabelValues(metrics.StageSink).Add(float64(len(recs)))
	for _, rec := range recs {
		it, err := itemFromRecord(rec)
		if err != nil {
			r.log.Warn("undecodable record dead-lettered", zap.String("topic", rec.Topic), zap.Int32("partition", rec.Partition), zap.Int64("offset", rec.Offset), zap.Error(err))
			p.bad = append(p.bad, r.deadLetterUndecodable(rec, err))
			continue
		}
		items = append(items, it)
	}
	p.f = r.launch(ctx, source, items, waitBreaker, after, slots)
	return p
}

// partitions lists the partitions records come from.
func partitions(recs []*kgo.Record) []int32 {
	var out []int32
	for _, rec := range recs {
		if !slices.Contains(out, rec.Partition) {
			out = append(out, rec.Partition)
		}
	}
	return out
}

// finish waits until every event of a poll has an outcome, stores the outcomes' records and
// commits the poll's offsets. Polls are finished in the order they were taken, so an offset is
// committed only once every earlier record's outcome is stored.
func (r *Runner) finish(ctx context.Context, cl *kgo.Client, p *polled) error {
	c := p.f.wait()
	out := append(r.records(c, true), p.bad...)
	storeCtx, cancel := graceContext(ctx, shutdownGrace)
	defer cancel()
	err := r.journal.flush(storeCtx)
	if err == nil {
		err = cl.ProduceSync(storeCtx, out...).FirstErr()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // shutting down: the uncommitted records are delivered again after restart
		}
		return fmt.Errorf("store delivery records: %w", err)
	}
	if err := cl.CommitRecords(storeCtx, p.recs...); err != nil {
		r.log.Warn("commit offsets", zap.Error(err))
	}
	return nil
}

func (r *Runner) logFetchErrors(fetches kgo.Fetches) {
	fetches.EachError(func(t string, p int32, err error) {
		if ctxErr(err) {
			return
		}
		r.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
	})
}
