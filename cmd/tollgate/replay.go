package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/processors/enforce"
)

func newReplayCmd() *cobra.Command {
	var from, to, dest string
	cmd := &cobra.Command{
		Use:   "replay --config FILE --from RFC3339 [--to RFC3339] [--destination NAME]",
		Short: "Re-run consent enforcement over raw events in a time range with the current policy",
		Long: `Re-decides every raw event whose time is in [--from, --to) with the policy now configured.
Each decision carries a new run id, printed first on stdout; replayed decisions go to the audit
trail only, never to a vendor. Progress (records read of the raw topic's total, percent, rate)
goes to stderr. Once the audit writer has stored the decisions, compare them with the original
ones: tollgate audit diff --run ID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := load(cmd)
			if err != nil {
				return err
			}
			opt := enforce.ReplayOptions{Destination: dest}
			if opt.From, err = parseTime("--from", from, true); err != nil {
				return err
			}
			if opt.To, err = parseTime("--to", to, false); err != nil {
				return err
			}
			if !opt.To.IsZero() && !opt.To.After(opt.From) {
				return usageError{fmt.Errorf("--to %s is not after --from %s", to, from)}
			}
			if dest != "" && a.cfg.Policy.Destinations[dest] == nil {
				return usageError{fmt.Errorf("--destination %q: no such destination in %s", dest, a.cfg.Policy.File)}
			}
			if err := ensureTopics(cmd.Context(), a); err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			// The run id first, on stdout: scripts capture it (RUN=$(tollgate replay ...)) and
			// it names the run even if the replay fails half-way.
			opt.RunID = uuid.NewString()
			fmt.Fprintln(out, opt.RunID)
			p := newProgress(errOut, "replay "+opt.RunID)
			opt.Progress = p.update
			res, err := enforce.Replay(cmd.Context(), a.cfg, a.log, opt)
			p.done()
			if err != nil {
				return fmt.Errorf("replay %s: %w", res.RunID, err)
			}
			fmt.Fprintf(errOut, "replay %s: %d events in range, %d decisions written (policy %s); compare: tollgate audit diff --run %s\n",
				res.RunID, res.Events, res.Decisions, a.cfg.Policy.Version, res.RunID)
			return nil
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&from, "from", "", "start of the event-time range (RFC3339), required")
	cmd.Flags().StringVar(&to, "to", "", "end of the event-time range (RFC3339, exclusive); default: no end")
	cmd.Flags().StringVar(&dest, "destination", "", "re-decide only this destination")
	return cmd
}

func parseTime(flag, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, usageError{fmt.Errorf("%s is required", flag)}
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, usageError{fmt.Errorf("%s %q: not an RFC3339 time (e.g. 2026-11-23T10:00:00Z)", flag, s)}
	}
	return t, nil
}

// progress prints "<label>: read/total records (pct%), rate records/s" to w: rewritten in place
// (\r) at most 4 times a second on a terminal, a new line every 5 s otherwise (logs, CI).
type progress struct {
	w        io.Writer
	label    string
	tty      bool
	start    time.Time
	last     time.Time
	printed  bool
	lastRead int64
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(read, total int64) {
	every := 5 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	if time.Since(p.last) < every && read != total {
		return
	}
	p.last, p.lastRead = time.Now(), read
	fmt.Fprint(p.w, p.line(read, total, time.Since(p.start)))
	p.printed = true
}

func (p *progress) line(read, total int64, elapsed time.Duration) string {
	pct, rate := progressRate(float64(read), float64(total), elapsed)
	s := fmt.Sprintf("%s: %d/%d records (%.1f%%), %.0f records/s", p.label, read, total, pct, rate)
	if p.tty {
		return "\r" + s + "\x1b[K" // clear what a longer previous line left
	}
	return s + "\n"
}

// progressRate is a long command's share done (percent; 100 when there is nothing to do) and
// its rate so far per second.
func progressRate(done, total float64, elapsed time.Duration) (pct, rate float64) {
	pct = 100.0
	if total > 0 {
		pct = 100 * done / total
	}
	if s := elapsed.Seconds(); s > 0 {
		rate = done / s
	}
	return pct, rate
}

// done ends the in-place line on a terminal.
func (p *progress) done() {
	if p.tty && p.printed {
		fmt.Fprintln(p.w)
	}
}
