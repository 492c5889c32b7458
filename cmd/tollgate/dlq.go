package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay a destination's dead-letter topic",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDLQListCmd(), newDLQReplayCmd())
	return cmd
}

// dlqDestination loads the config and returns the policy entry of --destination.
func dlqDestination(cmd *cobra.Command) (*app, *policy.Destination, error) {
	name, _ := cmd.Flags().GetString("destination")
	if name == "" {
		return nil, nil, usageError{fmt.Errorf("--destination NAME is required")}
	}
	a, err := load(cmd)
	if err != nil {
		return nil, nil, err
	}
	dest, ok := a.cfg.Policy.Destinations[name]
	if !ok {
		return nil, nil, usageError{fmt.Errorf("--destination %q: no such destination in %s (have: %v)", name, a.cfg.Policy.File, a.cfg.Policy.Names)}
	}
	if err := ensureTopics(cmd.Context(), a); err != nil {
		return nil, nil, err
	}
	return a, dest, nil
}

func newDLQListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list --config FILE --destination NAME",
		Short: "List the dead-lettered events of a destination",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, dest, err := dlqDestination(cmd)
			if err != nil {
				return err
			}
			dls, _, err := delivery.ReadDeadLetters(cmd.Context(), a.cfg, dest.Name, a.log, nil)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "OFFSET\tEVENT ID\tATTEMPTS\tFIRST FAILURE\tERROR")
			for _, d := range dls {
				fmt.Fprintf(w, "%d:%d\t%s\t%d\t%s\t%s\n", d.Partition, d.Offset, orDash(d.EventID), d.Attempts,
					d.FirstFailure.UTC().Format(time.RFC3339), d.Error)
			}
			fmt.Fprintf(w, "total\t%d\t\t\t\n", len(dls))
			return w.Flush()
		},
	}
	configFlag(cmd)
	cmd.Flags().String("destination", "", "destination name from the policy (required)")
	return cmd
}

func newDLQReplayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay --config FILE --destination NAME [--since RFC3339]",
		Short: "Re-deliver dead-lettered events after a fix (consent is re-checked; nothing bypasses it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var since time.Time
			if s, _ := cmd.Flags().GetString("since"); s != "" {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return usageError{fmt.Errorf("--since %q: not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z)", s)}
				}
				since = t
			}
			a, dest, err := dlqDestination(cmd)
			if err != nil {
				return err
			}
			r := delivery.NewReplayer(a.cfg, dest, a.adapters[dest.Name], a.log)
			defer a.log.Sync() //nolint:errcheck // stderr sync errors are meaningless
			errOut := cmd.ErrOrStderr()
			p, err := r.Replay(cmd.Context(), since, func(p delivery.ReplayProgress) {
				fmt.Fprintf(errOut, "replay: %d of %d done (delivered %d, blocked %d, dead_lettered %d), %d waiting for a retry\n",
					p.Counts[delivery.StatusDelivered]+p.Counts[delivery.StatusBlocked]+p.Counts[delivery.StatusDeadLettered], p.Total,
					p.Counts[delivery.StatusDelivered], p.Counts[delivery.StatusBlocked], p.Counts[delivery.StatusDeadLettered], p.Waiting)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d: delivered %d, blocked %d, dead_lettered %d, unreadable %d\n", p.Total,
				p.Counts[delivery.StatusDelivered], p.Counts[delivery.StatusBlocked], p.Counts[delivery.StatusDeadLettered], p.Skipped)
			return nil
		},
	}
	configFlag(cmd)
	cmd.Flags().String("destination", "", "destination name from the policy (required)")
	cmd.Flags().String("since", "", "replay only events dead-lettered at or after this time (RFC 3339)")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
