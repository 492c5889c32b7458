package delivery

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// What became of an event a repair handed over (RepairCounts' keys), beside BlockedWithdrawn and
// BlockedErased.
const (
	RepairSent             = "sent"
	RepairAlreadyDelivered = statusAlreadyDelivered
	RepairFailed           = "failed" // refused by the vendor or out of attempts: on the dead-letter topic
	// RepairInDoubt: sent, outcome unknown, and not sent again (on_doubt skip; CONTRACT §9).
	RepairInDoubt = StatusInDoubt
)

// repairPartition is the source partition a repair's requests name in the journal: its events
// are read from no topic, and one partition lets the next repair find the requests a stopped one
// left in doubt.
const repairPartition = 0

// RepairOptions are a repair's share of the destination: it runs beside live delivery (another
// process, often the same vendor account), so it takes little.
type RepairOptions struct {
	// Concurrency is how many requests it has in flight at once (default 1).
	Concurrency int
	// RateLimit is the most requests per second it sends; 0: no limit of its own.
	RateLimit float64
	// Now is the clock (default time.Now): the vendor's age limit (Validate) is checked against it.
	Now func() time.Time
	// Consent is the send-time re-check's view (required), shared by the repair's destinations
	// and followed by the caller: the whole consent-state topic read once, not once per
	// destination (NewWithdrawals(0), Follow).
	Consent *Withdrawals
	// Candidate, if set, reports whether an event id is one the repair may send to this
	// destination (whether or not it has been handed over yet): the private ledger keeps the
	// entries of these only, and reads live traffic's past without a write.
	Candidate func(eventID string) bool
}

// Repairer delivers the events a replay newly allows (tollgate repair) through the destination's
// own engine: its adapter, breaker, the send-time consent re-check and the delivery ledger, so an
// event the vendor already has is never sent again and a user who has withdrawn since is never
// sent. It differs from a runner the way the DLQ Replayer does — the whole consent-state topic is
// read, no retry horizon applies, temporary failures are retried in process — and in two more:
// its concurrency and rate are its own small share (RepairOptions), and its ledger store is
// private and never expires, since repaired events may have been decided days ago (and keeps
// only the repair's own: RepairOptions.Candidate).
type Repairer struct {
	r  *Runner
	cl *kgo.Client // stores the records of events not sent, retry and dead-letter records
}

// NewRepairer returns the repairer of one destination.
func NewRepairer(cfg *config.Config, dest *policy.Destination, adapter sdk.Adapter, log *zap.Logger, opt RepairOptions) *Repairer {
	r := NewRunner(cfg, dest, adapter, log.Named("repair"))
	r.horizon = math.MaxInt64
	r.consent = opt.Consent
	r.privateLedger = &storeScope{source: sourceRepair, event: opt.Candidate}
	r.concurrency = max(opt.Concurrency, 1)
	r.mainSlots, r.retrySlots = make(chan struct{}, r.concurrency), make(chan struct{}, r.concurrency)
	if opt.RateLimit > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(opt.RateLimit), 1)
	}
	if opt.Now != nil {
		r.now = opt.Now
	}
	return &Repairer{r: r}
}

// Start follows the ledger until ctx ends or stop is called (the consent view is the caller's
// to follow); every other method needs it started.
func (rp *Repairer) Start(ctx context.Context) (stop func() error, err error) {
	r := rp.r
	g, gctx := errgroup.WithContext(ctx)
	followCtx, stopFollow := context.WithCancel(gctx)
	cl, err := kafka.NewClient(r.cfg, r.log)
	if err != nil {
		stopFollow()
		return nil, err
	}
	stopLedger, err := r.startLedger(followCtx, g)
	if err != nil {
		stopFollow()
		cl.Close()
		return nil, err
	}
	rp.cl = cl
	return func() error {
		stopFollow()
		err := g.Wait()
		stopLedger()
		cl.Close()
		return err
	}, nil
}

// Pause stops its private ledger following the journal until Resume: a repair waiting for live
// traffic to leave room reads nothing beside it (the consent view is the caller's to pause).
// Deliver and Screen wait while paused: Resume before them.
func (rp *Repairer) Pause() { rp.r.journal.store.view.pause() }

// Resume follows the journal again after Pause; the next Deliver or Screen catches up first.
func (rp *Repairer) Resume() { rp.r.journal.store.view.resume() }

// Screen says what the repair would do with ev now, without sending it: BlockedWithdrawn or
// BlockedErased (the send-time re-check), RepairAlreadyDelivered (the ledger), or "" to send.
// A dry run counts with it.
func (rp *Repairer) Screen(ctx context.Context, ev *schemas.FilteredEvent) (string, error) {
	r := rp.r
	if err := r.consent.Sync(ctx, consentSyncReuse); err != nil {
		return "", err
	}
	if why := r.consent.Check(ev, r.dest.Purpose); why != "" {
		return why, nil
	}
	if err := r.journal.store.sync(ctx, consentSyncReuse); err != nil {
		return "", err
	}
	if r.journal.store.delivered(ev) {
		return RepairAlreadyDelivered, nil
	}
	return "", nil
}

// Deliver sends evs and returns once each has a final outcome, counted by RepairSent,
// BlockedWithdrawn, BlockedErased, RepairAlreadyDelivered and RepairFailed. Every attempt is
// audited (deliveries rows carry the events' run id) and the delivered ones are in the ledger
// before it returns; what fails for good goes to the dead-letter topic, as live failures do.
func (rp *Repairer) Deliver(ctx context.Context, evs []*schemas.FilteredEvent) (map[string]int, error) {
	r := rp.r
	counts := map[string]int{}
	items := make([]*item, 0, len(evs))
	for _, ev := range evs {
		b, err := schemas.FilteredEvents.Encode(ev)
		if err != nil {
			return counts, fmt.Errorf("encode repaired event: %w", err)
		}
		// Read from no partition: its journal lines all name partition 0 (repairPartition).
		items = append(items, &item{ev: ev, value: b, origin: r.cfg.Topic(config.DestTopic(r.dest.Name)), part: repairPartition})
	}
	// A repair stopped mid-request leaves intents without outcome: in doubt, settled here.
	if err := r.settleDoubts(ctx, sourceRepair, []int32{repairPartition}); err != nil {
		return counts, err
	}
	for len(items) > 0 {
		c := r.deliver(ctx, sourceRepair, items, true)
		if err := r.journal.flush(context.WithoutCancel(ctx)); err != nil {
			return counts, err
		}
		if err := rp.cl.ProduceSync(context.WithoutCancel(ctx), r.records(c, false)...).FirstErr(); err != nil {
			return counts, fmt.Errorf("store delivery records: %w", err)
		}
		for _, o := range c.outcomes {
			switch o.status {
			case StatusDelivered:
				counts[RepairSent]++
			case StatusBlocked:
				counts[o.reason]++
			case statusAlreadyDelivered:
				counts[RepairAlreadyDelivered]++
			case StatusDeadLettered:
				counts[RepairFailed]++
			case StatusInDoubt:
				if !o.again {
					counts[RepairInDoubt]++
				}
			}
		}
		var due time.Time
		items, due = c.later()
		if len(items) > 0 && ctx.Err() != nil {
			return counts, fmt.Errorf("repair interrupted with %d events unsent: %w", len(items), ctx.Err())
		}
		if err := backoff.Sleep(ctx, due.Sub(r.now())); err != nil && len(items) > 0 {
			return counts, fmt.Errorf("repair interrupted with %d events waiting for a retry: %w", len(items), err)
		}
	}
	return counts, nil
}

// openPrivateLedgerStore is a ledger store of this process alone, in a fresh folder removed at
// close, built from the whole ledger topic and never expired: a repair sends events decided
// days ago, whose entries a shared store (kept for the retry horizon) may have dropped. scope
// narrows what it keeps to the repair's own (storeScope).
func openPrivateLedgerStore(cfg *config.Config, dest string, log *zap.Logger, scope *storeScope) (*ledgerStore, error) {
	base := cfg.Delivery.LedgerDir
	if base == "" {
		base = filepath.Join(os.TempDir(), "tollgate-ledger")
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("delivery ledger %s: %w", base, err)
	}
	dir, err := os.MkdirTemp(base, "repair-"+safeName(dest)+"-")
	if err != nil {
		return nil, fmt.Errorf("delivery ledger: %w", err)
	}
	// The expiry's cutoff day is computed from now - horizon: a century puts it before day 0,
	// so nothing is dropped.
	l := &ledgerStore{topic: cfg.Topic(config.LedgerTopic(dest)), horizon: 100 * 365 * 24 * time.Hour,
		view: newPlaced(), log: log, writer: newWriterID(), temp: true, dir: dir, only: scope}
	if l.db, err = openStore(dir, &l.bottom); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("delivery ledger %s: %w", dir, err)
	}
	return l, nil
}
