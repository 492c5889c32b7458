// Package repair delivers what a policy fix newly allows: for a replay run (`tollgate replay`),
// every event whose replayed decision for a destination is `forwarded` where the live decision
// was `blocked` is re-decided from the raw topic (its original event time, the replayed fields)
// and sent through the destination's own engine (sinks/delivery's Repairer: adapter, breaker,
// rate limit, send-time consent re-check, delivery ledger), never older than the vendor accepts
// (policy.Destination.MaxEventAge). CONTRACT §9 "Repair after a policy fix"; docs/privacy-teams.md.
package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/processors/enforce"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Options select and pace a repair.
type Options struct {
	RunID       string
	Destination string // only this destination; "" for all
	DryRun      bool   // count, send nothing
	// Now is the clock the vendors' age limits are checked against (default time.Now).
	Now func() time.Time
	// Concurrency is each destination's requests in flight (default 1): live traffic keeps
	// delivery.concurrency, the repair takes little beside it.
	Concurrency int
	// RateShare is the share of the destination's rate limit (config.rate_limit, else
	// delivery.rate_limit) the repair may use on its own (default 0.25); no limit when the
	// destination has none.
	RateShare float64
	// BatchSize is how many events are handed to a destination's engine at once (default 1000;
	// less with a Rate: a tenth of a second's budget).
	BatchSize int
	// Rate is the most events per second the repair hands on, over all destinations (0: no
	// budget). Each costs the broker, the audit writer and ClickHouse beside live traffic (gate).
	Rate float64
	// YieldLag pauses the repair while live traffic's consumer groups (processor, sinks, audit
	// writer) lag more than this many records in all (0: never pause).
	YieldLag int64
	// YieldCPU pauses the repair while the other processes of this machine keep more than this
	// share (0 to 1) of its CPUs busy (0: never pause).
	YieldCPU float64
	// Progress, if set, is called now and then with the events handled so far.
	Progress func(done, total int)
	// Waiting, if set, is called about once a second while the repair pauses for live traffic:
	// why, and for how long so far.
	Waiting func(reason string, waited time.Duration)
}

// Counts is what became of a repair's events (CONTRACT §9's stdout line). Every candidate ends
// in exactly one of the last six.
type Counts struct {
	Candidates       int `json:"repaired"`
	Sent             int `json:"sent"`
	TooOld           int `json:"too_old"`
	Withdrawn        int `json:"withdrawn"`
	Erased           int `json:"erased"`
	AlreadyDelivered int `json:"already_delivered"`
	Failed           int `json:"failed"`
}

// String is the stdout line: "repaired N: sent S, too_old T, withdrawn W, erased E,
// already_delivered A, failed F".
func (c Counts) String() string {
	return fmt.Sprintf("repaired %d: sent %d, too_old %d, withdrawn %d, erased %d, already_delivered %d, failed %d",
		c.Candidates, c.Sent, c.TooOld, c.Withdrawn, c.Erased, c.AlreadyDelivered, c.Failed)
}

func (c *Counts) add(status string, n int) {
	switch status {
	case delivery.RepairSent:
		c.Sent += n
	case delivery.BlockedWithdrawn:
		c.Withdrawn += n
	case delivery.BlockedErased:
		c.Erased += n
	case delivery.RepairAlreadyDelivered:
		c.AlreadyDelivered += n
	default:
		c.Failed += n
	}
}

func (c Counts) done() int {
	return c.Sent + c.TooOld + c.Withdrawn + c.Erased + c.AlreadyDelivered + c.Failed
}

// ErrNoRun reports a run id with no decisions in the audit trail.
var ErrNoRun = errors.New("no decisions with this run id")

// Run repairs the replay run opt.RunID. adapters are the destinations' adapters by name.
func Run(ctx context.Context, cfg *config.Config, adapters map[string]sdk.Adapter, db *audit.DB, log *zap.Logger, opt Options) (Counts, error) {
	opt = withDefaults(opt)
	var counts Counts
	if err := checkRun(ctx, cfg, db, opt.RunID); err != nil {
		return counts, err
	}
	cands, err := loadCandidates(ctx, db, opt, &counts)
	if err != nil {
		return counts, err
	}
	counts.Candidates += cands.total
	if cands.total == 0 {
		return counts, nil
	}
	s := &session{cfg: cfg, log: log, opt: opt, cands: cands, counts: &counts, pending: map[string][]*schemas.FilteredEvent{}}
	g, closeGate, err := newGate(cfg, log, opt)
	if err != nil {
		return counts, err
	}
	defer closeGate()
	s.gate = g
	stop, err := s.startRepairers(ctx, adapters)
	if err != nil {
		return counts, err
	}
	g.onPause, g.onResume, g.onWait = s.pauseViews, s.resumeViews, opt.Waiting
	err = s.walk(ctx)
	if err == nil {
		err = s.flushAll(ctx)
	}
	err = errors.Join(err, stop())
	if err == nil && cands.left > 0 {
		// Retention removed them from the raw topic (or they never were there): nothing to send.
		log.Warn("repair: events not found on the raw topic", zap.Int("events", cands.left))
		counts.Failed += cands.left
	}
	s.progress(true)
	return counts, err
}

func withDefaults(opt Options) Options {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 1
	}
	if opt.RateShare <= 0 {
		opt.RateShare = 0.25
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 1000
	}
	return opt
}

// checkRun refuses a run the policy now configured did not decide: the repair re-decides each
// event, and under another policy it would send something the run's diff never showed.
func checkRun(ctx context.Context, cfg *config.Config, db *audit.DB, runID string) error {
	versions, err := db.RunPolicyVersions(ctx, runID)
	if err != nil {
		return err
	}
	if len(versions) == 0 {
		return fmt.Errorf("run %q: %w (the audit writer may not have stored it yet)", runID, ErrNoRun)
	}
	if !slices.Equal(versions, []string{cfg.Policy.Version}) {
		return fmt.Errorf("run %s was decided under policy version %v, the policy now configured is %q: replay with this policy and repair that run",
			runID, versions, cfg.Policy.Version)
	}
	return nil
}

// session is one repair under way.
type session struct {
	cfg       *config.Config
	log       *zap.Logger
	opt       Options
	cands     *candidates
	counts    *Counts
	repairers map[string]*delivery.Repairer
	consent   *delivery.Withdrawals // the consent-state view the repairers share
	gate      *gate
	pending   map[string][]*schemas.FilteredEvent
	lastShown time.Time
}

// startRepairers starts the engine of each destination with candidates.
func (s *session) startRepairers(ctx context.Context, adapters map[string]sdk.Adapter) (stop func() error, err error) {
	s.repairers = map[string]*delivery.Repairer{}
	// One view of the consent state for every destination's send-time re-check: the topic is
	// read from its start once, not once per destination.
	consent := delivery.NewWithdrawals(0)
	s.consent = consent
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- consent.Follow(followCtx, s.cfg, s.log) }()
	var stops []func() error
	stop = func() error {
		var errs []error
		for _, f := range stops {
			errs = append(errs, f())
		}
		stopFollow() // last: a repairer stopping may still re-check
		return errors.Join(append(errs, <-followed)...)
	}
	for name := range s.cands.byDest {
		dest := s.cfg.Policy.Destinations[name]
		if dest == nil || adapters[name] == nil {
			return stop, fmt.Errorf("run %s repairs destination %q, which the policy no longer has", s.opt.RunID, name)
		}
		rp := delivery.NewRepairer(s.cfg, dest, adapters[name], s.log, delivery.RepairOptions{
			Concurrency: s.opt.Concurrency, RateLimit: s.rateOf(name), Now: s.opt.Now, Consent: consent,
			Candidate: func(eventID string) bool { return s.cands.was(name, eventID) }})
		f, err := rp.Start(ctx)
		if err != nil {
			return stop, err
		}
		stops = append(stops, f)
		s.repairers[name] = rp
	}
	return stop, nil
}

// pauseViews stops the consent view and the private ledgers following live traffic's topics
// while the gate holds the repair: beside saturated live traffic they were most of its CPU
// (a private ledger reads every record of live traffic's journal to keep the few it needs).
// resumeViews lets them go on; each delivery catches them up first (Sync), so what they skipped
// is read once there is room.
func (s *session) pauseViews() {
	s.consent.Pause()
	for _, rp := range s.repairers {
		rp.Pause()
	}
}

func (s *session) resumeViews() {
	s.consent.Resume()
	for _, rp := range s.repairers {
		rp.Resume()
	}
}

// rateOf is the repair's share of a destination's rate limit (0: none).
func (s *session) rateOf(name string) float64 {
	perSec := s.cfg.Delivery.RateLimit
	if v, ok := sdk.RateLimit(s.cfg.Policy.Destinations[name]); ok {
		perSec = v
	}
	return perSec * s.opt.RateShare
}

// walk re-decides the candidates from the raw topic and hands each on (repairEvent).
func (s *session) walk(ctx context.Context) error {
	ropt := enforce.ReplayOptions{RunID: s.opt.RunID, Destination: s.opt.Destination,
		Select: func(ev *schemas.Event) bool { return s.cands.wants(ev.EventID) }}
	return enforce.Redecide(ctx, s.cfg, s.log, ropt, func(ev *schemas.Event, outs []consent.Outcome) error {
		for _, o := range outs {
			liveMs, ok := s.cands.take(o.Decision.Destination, ev.EventID)
			if !ok {
				continue
			}
			if err := s.repairEvent(ctx, o, liveMs); err != nil {
				return err
			}
		}
		s.progress(false)
		return nil
	})
}

// repairEvent counts or queues one re-decided candidate.
func (s *session) repairEvent(ctx context.Context, o consent.Outcome, liveMs int64) error {
	name := o.Decision.Destination
	if o.Decision.Outcome != consent.Forwarded || o.Filtered == nil {
		// The run forwarded it; the same policy over the same log now does not: a replay
		// with state this walk did not rebuild. Never send what was not shown in the diff.
		s.log.Warn("repair: event decided differently than in the run; not sent", zap.String("destination", name),
			zap.String("event_id", o.Decision.EventID), zap.String("reason", o.Decision.Reason))
		s.counts.Failed++
		return nil
	}
	f := o.Filtered
	// The send-time re-check and the ledger key on the decision time: the live one, so a
	// withdrawal made since the live decision blocks it and a second repair finds its entry.
	f.DecidedMs = liveMs
	if s.opt.Now().Sub(time.UnixMilli(f.TimestampMs)) > s.cfg.Policy.Destinations[name].MaxEventAge() {
		s.counts.TooOld++
		return nil
	}
	if s.opt.DryRun {
		why, err := s.repairers[name].Screen(ctx, f)
		if err != nil {
			return err
		}
		if why == "" {
			why = delivery.RepairSent
		}
		s.counts.add(why, 1)
		return nil
	}
	s.pending[name] = append(s.pending[name], f)
	if len(s.pending[name]) >= s.opt.BatchSize {
		return s.flush(ctx, name)
	}
	return nil
}

// flush delivers a destination's queued events, a chunk at a time as the gate lets them.
func (s *session) flush(ctx context.Context, name string) error {
	evs := s.pending[name]
	s.pending[name] = nil
	for len(evs) > 0 {
		chunk := evs[:min(len(evs), s.gate.chunk)]
		evs = evs[len(chunk):]
		if err := s.gate.wait(ctx, len(chunk)); err != nil {
			return err
		}
		got, err := s.repairers[name].Deliver(ctx, chunk)
		for status, n := range got {
			s.counts.add(status, n)
		}
		if err != nil {
			return err
		}
		s.progress(false)
	}
	return nil
}

func (s *session) flushAll(ctx context.Context) error {
	for name := range s.pending {
		if err := s.flush(ctx, name); err != nil {
			return err
		}
		s.progress(false)
	}
	return nil
}

// progress reports at most twice a second, and at the end.
func (s *session) progress(final bool) {
	if s.opt.Progress == nil || (!final && time.Since(s.lastShown) < 500*time.Millisecond) {
		return
	}
	s.lastShown = time.Now()
	s.opt.Progress(s.counts.done(), s.counts.Candidates)
}
