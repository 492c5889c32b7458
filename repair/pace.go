package repair

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/lag"
)

// lagCheckEvery is how often the gate reads the live groups' lag: one ListOffsets and one
// OffsetFetch per group, nothing beside the repair's own traffic.
const lagCheckEvery = time.Second

// gate keeps a repair behind live traffic. The repair's cost is not only its own CPU (which
// Priority takes care of): each event it sends is a raw record read and decoded, a vendor
// request, journal and ledger records and a deliveries row in Kafka, and an insert the audit
// writer makes into ClickHouse — work done by the same broker, audit writer and server as live
// traffic, at their priority. So the gate holds each chunk of events back:
//   - to a budget of events per second over all destinations (Options.Rate);
//   - while the live pipeline's consumer groups (processor, sinks, audit writer) lag more than
//     Options.YieldLag records: a backlog means live traffic needs every resource it can get,
//     and the repair's own deliveries rows count in the audit writer's lag, so it also never
//     outruns what the writer stores;
//   - while the other processes of this machine keep more than Options.YieldCPU of its CPUs
//     busy (cpuMeter): the pipeline shares the machine and has no core to spare.
type gate struct {
	limiter  *rate.Limiter // nil: no budget
	chunk    int           // events handed on at once
	yieldLag int64         // 0: never pause
	lagOf    func(context.Context) (int64, error)
	yieldCPU float64                       // 0: never pause
	cpuOf    func() (float64, bool, error) // the others' share of the CPUs since the last call
	every    time.Duration                 // lagCheckEvery
	log      *zap.Logger
	// onPause and onResume (optional) run as a pause begins and ends: the repair's followed
	// views stop reading live traffic's topics while it waits, and catch up once it goes on.
	onPause, onResume func()
	// onWait (optional) is told at each look during a pause why the repair waits and since
	// when: a repair paused for an hour says so on its progress line.
	onWait func(reason string, waited time.Duration)

	checked time.Time
	paused  time.Duration // in all, for the log
}

// newGate builds the gate of opt; the lag is read through a client of its own (close the
// returned function's client with it).
func newGate(cfg *config.Config, log *zap.Logger, opt Options) (*gate, func(), error) {
	g := &gate{chunk: opt.BatchSize, yieldLag: opt.YieldLag, yieldCPU: opt.YieldCPU, every: lagCheckEvery, log: log}
	if opt.YieldCPU > 0 {
		m, err := newCPUMeter()
		if err != nil {
			return nil, nil, err
		}
		g.cpuOf = m.othersShare
	}
	if opt.Rate > 0 {
		// Chunks of a tenth of a second's budget: the vendor requests and the audit rows come
		// in a steady trickle rather than a burst each second.
		g.chunk = min(opt.BatchSize, max(1, int(opt.Rate/10)))
		g.limiter = rate.NewLimiter(rate.Limit(opt.Rate), g.chunk)
	}
	if opt.YieldLag <= 0 {
		return g, func() {}, nil
	}
	cl, err := kafka.NewClient(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	groups := []string{cfg.ProcessorGroup(), cfg.AuditGroup()}
	for _, name := range cfg.Policy.Names {
		groups = append(groups, cfg.SinkGroup(name))
	}
	g.lagOf = func(ctx context.Context) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, lag.DefaultTimeout)
		defer cancel()
		return lag.Total(ctx, adm, groups...)
	}
	return g, cl.Close, nil
}

// wait returns when n events (at most chunk) may be handed on.
func (g *gate) wait(ctx context.Context, n int) error {
	if err := g.waitForLive(ctx); err != nil {
		return err
	}
	if g.limiter == nil {
		return nil
	}
	return g.limiter.WaitN(ctx, n)
}

// waitForLive waits while live traffic needs the room (busy), looking at most once a
// lagCheckEvery.
func (g *gate) waitForLive(ctx context.Context) error {
	if (g.lagOf == nil && g.cpuOf == nil) || time.Since(g.checked) < g.every {
		return nil
	}
	var since time.Time
	for {
		reason, why := g.busy(ctx)
		g.checked = time.Now()
		if reason == "" {
			if !since.IsZero() {
				if g.onResume != nil {
					g.onResume()
				}
				g.paused += time.Since(since)
				g.log.Info("repair: live traffic leaves room again, resuming", zap.Duration("paused", time.Since(since).Round(time.Second)),
					zap.Duration("paused_in_all", g.paused.Round(time.Second)))
			}
			return nil
		}
		if since.IsZero() {
			since = time.Now()
			g.log.Info("repair: pausing for live traffic", why...)
			if g.onPause != nil {
				g.onPause()
			}
		}
		if g.onWait != nil {
			g.onWait(reason, time.Since(since))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("repair paused for live traffic: %w", ctx.Err())
		case <-time.After(g.every):
		}
	}
}

// busy says why live traffic needs the room now, in words and as log fields ("": it does not):
// the other processes keep more than yieldCPU of the CPUs busy, or live traffic's groups lag more
// than yieldLag, or their lag cannot be read (the repair waits rather than guess). The CPU is
// looked at first: it costs a read of /proc, the lag a round of requests to the broker live
// traffic uses, which a repair holding back for the CPU need not make each second. A CPU reading
// that fails does not hold the repair: the lag still does.
func (g *gate) busy(ctx context.Context) (string, []zap.Field) {
	if g.cpuOf != nil {
		share, ok, err := g.cpuOf()
		if err != nil {
			g.log.Warn("repair: reading the machine's CPU", zap.Error(err))
		}
		if ok && share > g.yieldCPU {
			return fmt.Sprintf("the machine's other processes keep %.0f%% of its CPUs busy (yield-cpu %g)", 100*share, g.yieldCPU),
				[]zap.Field{zap.Float64("cpu_others", share), zap.Float64("yield_cpu", g.yieldCPU)}
		}
	}
	if g.lagOf != nil {
		behind, err := g.lagOf(ctx)
		if err != nil {
			return "live traffic's lag cannot be read: " + err.Error(), []zap.Field{zap.Error(err)}
		}
		if behind > g.yieldLag {
			return fmt.Sprintf("live traffic lags %d records (yield-lag %d)", behind, g.yieldLag),
				[]zap.Field{zap.Int64("lag", behind), zap.Int64("yield_lag", g.yieldLag)}
		}
	}
	return "", nil
}
