package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/sinks/clickhouse"
)

func newAuditCmd() *cobra.Command {
	cmd := newComponentCmd("audit", "Run the audit writer (Kafka audit topics -> ClickHouse); subcommands query the audit tables", fixed(runAudit))
	cmd.AddCommand(newAuditSummaryCmd())
	return cmd
}

func newAuditSummaryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "summary --config FILE",
		Short: "Print decisions per destination, outcome and reason, and deliveries per status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := load(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := clickhouse.Open(ctx, a.cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := clickhouse.Migrate(ctx, db, db.Database); err != nil {
				return err
			}
			rows, err := clickhouse.Summary(ctx, db, db.Database)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "Decisions (live traffic):")
			if err := clickhouse.FormatSummary(out, rows); err != nil {
				return err
			}
			drows, err := clickhouse.DeliverySummary(ctx, db, db.Database)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "\nDelivery attempts:")
			return clickhouse.FormatDeliverySummary(out, drows)
		},
	}
	configFlag(cmd)
	return cmd
}
