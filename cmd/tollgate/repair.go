package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/repair"
)

func newRepairCmd() *cobra.Command {
	var (
		runID, dest string
		dryRun      bool
		opt         repair.Options
		prio        repair.Priority
	)
	cmd := &cobra.Command{
		Use:   "repair --config FILE --run ID [--destination NAME] [--dry-run]",
		Short: "Deliver what a replay run newly allows: events live traffic blocked that the fixed policy forwards",
		Long: `For a replay run (tollgate replay), sends every event whose replayed decision for a destination
is forwarded where the live decision was blocked, with its original event time and the replayed
fields, through the destination's own adapter, breaker and a share of its rate limit. Never an
event the delivery ledger holds as delivered (already_delivered), never one whose user has since
withdrawn the purpose or been erased (withdrawn, erased), never one older than the vendor accepts
(too_old: ga4 72h, meta_capi and tiktok 7 days, google_ads 90 days, webhook config.max_event_age).
The policy configured must be the one the run was decided under. Progress goes to stderr; the
counts to stdout:
  repaired N: sent S, too_old T, withdrawn W, erased E, already_delivered A, failed F
--dry-run counts the same way and sends nothing. Live traffic comes first: the repair takes a core
only when nothing else wants it (--idle: SCHED_IDLE; --idle=false --nice N instead) and the disk
likewise (--idle-io), hands on at most --rate events per second, pauses while the live pipeline's
consumer groups lag more than --yield-lag records or the machine's other processes keep more
than --yield-cpu of its CPUs busy, and sends one request at a time per destination
(--concurrency) within a quarter of the destination's rate limit (--rate-share). Its deliveries
rows carry the run id: tollgate audit summary --run ID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runID == "" {
				return usageError{fmt.Errorf("--run ID is required (the id tollgate replay printed)")}
			}
			if opt.RateShare < 0 || opt.RateShare > 1 {
				return usageError{fmt.Errorf("--rate-share %v: a share between 0 and 1", opt.RateShare)}
			}
			a, db, err := loadAudit(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			if dest != "" && a.cfg.Policy.Destinations[dest] == nil {
				return usageError{fmt.Errorf("--destination %q: no such destination in %s", dest, a.cfg.Policy.File)}
			}
			if opt.Rate < 0 || opt.YieldLag < 0 {
				return usageError{fmt.Errorf("--rate and --yield-lag: 0 (off) or more")}
			}
			if opt.YieldCPU < 0 || opt.YieldCPU > 1 {
				return usageError{fmt.Errorf("--yield-cpu %v: a share between 0 and 1 (0: off)", opt.YieldCPU)}
			}
			if err := repair.Lower(prio); err != nil {
				a.log.Warn(err.Error())
			}
			if err := ensureTopics(cmd.Context(), a); err != nil {
				return err
			}
			label := "repair " + runID
			if dryRun {
				label += " (dry run)"
			}
			// A repair runs for hours beside live traffic: debug.pprof_listen profiles it as it
			// does the components.
			ctx, cancel := context.WithCancel(cmd.Context())
			var g errgroup.Group
			defer func() { cancel(); _ = g.Wait() }()
			if err := servePprof(ctx, &g, a); err != nil {
				return fmt.Errorf("debug.pprof_listen: %w", err)
			}
			p := newRepairProgress(cmd.ErrOrStderr(), label)
			opt.RunID, opt.Destination, opt.DryRun, opt.Progress, opt.Waiting = runID, dest, dryRun, p.update, p.waiting
			counts, err := repair.Run(ctx, a.cfg, a.adapters, db, a.log, opt)
			if errors.Is(err, repair.ErrNoRun) {
				return usageError{err}
			}
			if err != nil {
				return fmt.Errorf("repair %s: %w", runID, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), counts)
			if dryRun {
				fmt.Fprintf(cmd.ErrOrStderr(), "repair %s: dry run, nothing sent\n", runID)
			}
			return nil
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "the replay run to repair (required)")
	cmd.Flags().StringVar(&dest, "destination", "", "repair only this destination")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be sent, send nothing")
	cmd.Flags().IntVar(&opt.Concurrency, "concurrency", 1, "requests in flight per destination")
	cmd.Flags().Float64Var(&opt.RateShare, "rate-share", 0.25, "share of the destination's rate limit the repair may use (none when it has no limit)")
	cmd.Flags().Float64Var(&opt.Rate, "rate", 1000, "events per second handed on, over all destinations (0: no budget); each costs Kafka, the audit writer and ClickHouse beside live traffic")
	cmd.Flags().Int64Var(&opt.YieldLag, "yield-lag", 20000, "pause while live traffic's consumer groups lag more than this many records in all (0: never pause)")
	cmd.Flags().Float64Var(&opt.YieldCPU, "yield-cpu", 0.9, "pause while the machine's other processes keep more than this share of its CPUs busy (0: never pause); SCHED_IDLE alone still takes a little from saturated cores")
	cmd.Flags().BoolVar(&prio.Idle, "idle", true, "run in the SCHED_IDLE CPU class: a core only when nothing else wants it")
	cmd.Flags().IntVar(&prio.Nice, "nice", 10, "CPU niceness with --idle=false (0: unchanged)")
	cmd.Flags().BoolVar(&prio.IdleIO, "idle-io", true, "idle I/O class for the repair's disk use (honoured by BFQ)")
	return cmd
}

// repairProgress prints "<label>: done/total events (pct%), rate events/s, about D left" to w,
// a line every 5 s and at the end (stderr is usually a log or a terminal kept scrolling).
type repairProgress struct {
	w           io.Writer
	label       string
	start       time.Time
	last        time.Time
	ended       bool // the 100% line is printed
	done, total int  // as of the last update
}

func newRepairProgress(w io.Writer, label string) *repairProgress {
	return &repairProgress{w: w, label: label, start: time.Now()}
}

func (p *repairProgress) update(done, total int) {
	p.done, p.total = done, total
	if p.ended || (time.Since(p.last) < 5*time.Second && done != total) {
		return
	}
	p.last, p.ended = time.Now(), done == total
	fmt.Fprintln(p.w, repairProgressLine(p.label, done, total, time.Since(p.start)))
}

// waiting prints, every 5 s while the repair pauses for live traffic, where it stands and why
// it waits (a rate and an estimate mean little then).
func (p *repairProgress) waiting(reason string, waited time.Duration) {
	if time.Since(p.last) < 5*time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintln(p.w, repairWaitingLine(p.label, p.done, p.total, reason, waited))
}

func repairWaitingLine(label string, done, total int, reason string, waited time.Duration) string {
	pct, _ := progressRate(float64(done), float64(total), time.Second)
	return fmt.Sprintf("%s: %d/%d events (%.1f%%), paused %s for live traffic: %s", label, done, total, pct, waited.Round(time.Second), reason)
}

// repairProgressLine is one progress line; the estimate assumes the rate so far holds.
func repairProgressLine(label string, done, total int, elapsed time.Duration) string {
	pct, rate := progressRate(float64(done), float64(total), elapsed)
	eta := "estimate pending"
	switch {
	case done >= total:
		eta = "done"
	case rate > 0:
		eta = "about " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String() + " left"
	}
	return fmt.Sprintf("%s: %d/%d events (%.1f%%), %.0f events/s, %s", label, done, total, pct, rate, eta)
}
