package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/processors/enforce"
)

func newReplayCmd() *cobra.Command {
	var from, to, dest string
	cmd := &cobra.Command{
		Use:   "replay --config FILE --from RFC3339 [--to RFC3339] [--destination NAME]",
		Short: "Re-run consent enforcement over raw events in a time range with the current policy",
		Long: `Re-decides every raw event whose time is in [--from, --to) with the policy now configured.
Each decision carries a new run id, printed first; replayed decisions go to the audit trail only,
never to a vendor. Compare them with the original ones in the decisions table (run_id = '').`,
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
			if dest != "" && a.cfg.Policy.Destinations[dest] == nil {
				return usageError{fmt.Errorf("--destination %q: no such destination in %s", dest, a.cfg.Policy.File)}
			}
			if err := ensureTopics(cmd.Context(), a); err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			last := time.Now()
			opt.Progress = func(read, total int64) {
				if time.Since(last) > time.Second || read == total {
					fmt.Fprintf(errOut, "\rreplay: %d/%d raw records read", read, total)
					last = time.Now()
				}
			}
			res, err := enforce.Replay(cmd.Context(), a.cfg, a.log, opt)
			fmt.Fprintln(errOut)
			if err != nil {
				return fmt.Errorf("replay %s: %w", res.RunID, err)
			}
			fmt.Fprintln(out, res.RunID)
			fmt.Fprintf(errOut, "replay %s: %d events in range, %d decisions written (policy %s)\n",
				res.RunID, res.Events, res.Decisions, a.cfg.Policy.Version)
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
