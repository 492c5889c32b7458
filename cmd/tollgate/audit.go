package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/report"
)

func newAuditCmd() *cobra.Command {
	cmd := newComponentCmd("audit", "Run the audit writer (Kafka audit topics -> ClickHouse); subcommands query the audit tables", fixed(runAudit))
	cmd.AddCommand(newAuditSummaryCmd(), newAuditUserCmd(), newAuditBlockedCmd(), newAuditDiffCmd())
	return cmd
}

// auditQuery builds a report subcommand: --config and --format, then run with an open,
// migrated database. Flags are checked before anything connects.
func auditQuery(use, short string, check func() error, run func(ctx context.Context, db *audit.DB, out io.Writer, format string) error) *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(*format); err != nil {
				return err
			}
			if check != nil {
				if err := check(); err != nil {
					return err
				}
			}
			_, db, err := loadAudit(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			defer db.Close()
			return run(ctx, db, cmd.OutOrStdout(), *format)
		},
	}
	configFlag(cmd)
	format = formatFlag(cmd)
	return cmd
}

func newAuditSummaryCmd() *cobra.Command {
	var run string
	cmd := auditQuery("summary --config FILE [--run ID] [--format table|json|csv]",
		"Print decisions per destination, outcome and reason, and deliveries per status (of live traffic, or of a replay run and its repair)", nil,
		func(ctx context.Context, db *audit.DB, out io.Writer, format string) error {
			rows, drows, err := summaries(ctx, db, run)
			if err != nil {
				return err
			}
			switch format {
			case formatJSON:
				return writeJSON(out, map[string]any{"decisions": nonNil(rows), "deliveries": nonNil(drows)})
			case formatCSV: // one table for tools: kind, destination, outcome or status, reason, count
				t := table{header: []string{"kind", "destination", "outcome_or_status", "reason", "count"}}
				for _, r := range rows {
					t.add("decision", r.Destination, r.Outcome, r.Reason, u64(r.Count))
				}
				for _, r := range drows {
					t.add("delivery_attempt", r.Destination, r.Status, "", u64(r.Count))
				}
				return t.writeCSV(out)
			}
			return writeSummaryText(out, rows, drows)
		})
	cmd.Flags().StringVar(&run, "run", "", "a replay run: its decisions, and the delivery attempts of its repair (tollgate repair)")
	return cmd
}

// summaries are live traffic's decisions and delivery attempts, or, with a run id, the run's
// decisions and its repair's delivery attempts (deliveries.run_id).
func summaries(ctx context.Context, db *audit.DB, run string) ([]audit.SummaryRow, []audit.DeliverySummaryRow, error) {
	if run == "" {
		rows, err := db.Summary(ctx)
		if err != nil {
			return nil, nil, err
		}
		drows, err := db.DeliverySummary(ctx)
		return rows, drows, err
	}
	rows, err := db.RunSummary(ctx, run)
	if err != nil {
		return nil, nil, err
	}
	drows, err := db.RunDeliverySummary(ctx, run)
	return rows, drows, err
}

// writeSummaryText prints the two summaries as aligned tables, each with a total line.
func writeSummaryText(out io.Writer, rows []audit.SummaryRow, drows []audit.DeliverySummaryRow) error {
	dec := table{header: []string{"destination", "outcome", "reason", "count"}}
	var total uint64
	for _, r := range rows {
		dec.add(r.Destination, r.Outcome, r.Reason, u64(r.Count))
		total += r.Count
	}
	dec.add("total", "", "", u64(total))
	del := table{header: []string{"destination", "status", "attempts"}}
	total = 0
	for _, r := range drows {
		del.add(r.Destination, r.Status, u64(r.Count))
		total += r.Count
	}
	del.add("total", "", u64(total))
	fmt.Fprintln(out, "Decisions (live traffic):")
	if err := dec.writeText(out); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nDelivery attempts:")
	return del.writeText(out)
}

func newAuditUserCmd() *cobra.Command {
	var (
		id    string
		limit int
	)
	cmd := auditQuery("user --config FILE --id USER [--limit N] [--format table|json|csv]",
		"Everything sent to or withheld from each destination about one user: fields, consent basis, deliveries",
		func() error {
			if id == "" {
				return usageError{fmt.Errorf("--id is required (the user_id, or the anonymous_id for an anonymous user)")}
			}
			if limit < 0 {
				return usageError{fmt.Errorf("--limit %d: must be 0 (no limit) or more", limit)}
			}
			return nil
		},
		func(ctx context.Context, db *audit.DB, out io.Writer, format string) error {
			rows, err := db.UserReport(ctx, id, limit)
			if err != nil {
				return err
			}
			recipients, err := db.UserRecipients(ctx, id)
			if err != nil {
				return err
			}
			// Per destination, then in time order (the query returns time order; stable sort).
			sortByDestination(rows)
			if format == formatJSON {
				return writeJSON(out, map[string]any{"user": id, "received_data": nonNil(recipients), "decisions": nonNil(rows)})
			}
			t := table{header: []string{"destination", "event_time", "event", "event_id", "outcome", "reason", "held", "purpose",
				"jurisdiction", "gpc", "consent_source", "consent_proof", "fields_sent", "policy_version", "delivery", "attempts"}}
			for _, r := range rows {
				status, attempts := "-", ""
				if d := r.Delivery; d != nil {
					status, attempts = d.Status, u64(d.Attempts)
					if d.HTTPStatus != 0 {
						status += " (" + strconv.Itoa(int(d.HTTPStatus)) + ")"
					}
				}
				t.add(r.Destination, r.EventTime.Format(time.RFC3339), r.EventName, r.EventID, r.Outcome, r.Reason, held(r.HeldMs), r.Purpose,
					r.Jurisdiction, strconv.FormatBool(r.GPC), orDash(r.ConsentSource), orDash(r.ConsentProof), list(r.FieldsSent), r.PolicyVersion, status, attempts)
			}
			if format == formatCSV {
				return t.writeCSV(out)
			}
			fmt.Fprintf(out, "User %s: %d decisions (live traffic)%s; data delivered to: %s\n\n", id, len(rows), heldSummary(rows), list(recipients))
			return t.writeText(out)
		})
	cmd.Flags().StringVar(&id, "id", "", "the user key: user_id, or anonymous_id for an anonymous user (required)")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many decisions, oldest first (0: all)")
	return cmd
}

// held is the user table's held column: how long the event waited for the user's choice under
// the policy's hold (docs/consent.md "Events before the choice"), "-" when it did not.
func held(ms uint32) string {
	if ms == 0 {
		return "-"
	}
	return report.HeldDuration(ms)
}

// heldSummary is ", N held until the choice" when some of the user's decisions were held.
func heldSummary(rows []audit.UserReportRow) string {
	n := 0
	for _, r := range rows {
		if r.HeldMs > 0 {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d held until the choice or the hold's window", n)
}

func newAuditBlockedCmd() *cobra.Command {
	var (
		sinceFlag string
		since     time.Time
	)
	cmd := auditQuery("blocked --config FILE [--since TIME] [--format table|json|csv]",
		"Count blocked events per destination and reason since a time (live traffic)",
		func() (err error) {
			since, err = parseSince(sinceFlag, time.Now())
			return err
		},
		func(ctx context.Context, db *audit.DB, out io.Writer, format string) error {
			rows, err := db.Blocked(ctx, since)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(out, map[string]any{"since": since.UTC().Format(time.RFC3339), "blocked": nonNil(rows)})
			}
			t := table{header: []string{"destination", "reason", "count"}}
			var total uint64
			for _, r := range rows {
				t.add(r.Destination, r.Reason, u64(r.Count))
				total += r.Count
			}
			if format == formatCSV {
				return t.writeCSV(out)
			}
			fmt.Fprintf(out, "Blocked since %s (live traffic):\n\n", since.UTC().Format(time.RFC3339))
			t.add("total", "", u64(total))
			return t.writeText(out)
		})
	cmd.Flags().StringVar(&sinceFlag, "since", "24h", "an RFC3339 time, or an age: 90m, 24h, 7d")
	return cmd
}

var daysAgo = regexp.MustCompile(`^(\d+)d$`)

// parseSince reads --since: an RFC3339 time, a Go duration ("36h") or whole days ("7d") before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if m := daysAgo.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Errorf("--since %q: use an RFC3339 time (2026-11-23T10:00:00Z) or an age (90m, 24h, 7d)", s)}
}

func newAuditDiffCmd() *cobra.Command {
	var (
		run   string
		limit int
	)
	cmd := auditQuery("diff --config FILE --run ID [--limit N] [--format table|json|csv]",
		"Compare a replay run's decisions with the live ones: what the current policy would change",
		func() error {
			if run == "" {
				return usageError{fmt.Errorf("--run is required (the id `tollgate replay` printed)")}
			}
			if limit < 0 {
				return usageError{fmt.Errorf("--limit %d: must be 0 (no limit) or more", limit)}
			}
			return nil
		},
		func(ctx context.Context, db *audit.DB, out io.Writer, format string) error {
			res, err := db.Diff(ctx, run, limit)
			if err != nil {
				return err
			}
			if res.Compared == 0 {
				return fmt.Errorf("audit diff: no decisions with run id %q in %s (wrong id, or the audit writer has not stored them yet)", run, db.Database)
			}
			if format == formatJSON {
				return writeJSON(out, res)
			}
			rows := table{header: []string{"event_id", "destination", "live", "replay", "fields_removed", "fields_added"}}
			for _, r := range res.Rows {
				live := "(none)"
				if r.Live != nil {
					live = r.Live.Outcome + "/" + r.Live.Reason
				}
				rows.add(r.EventID, r.Destination, live, r.Replay.Outcome+"/"+r.Replay.Reason, list(r.FieldsRemoved), list(r.FieldsAdded))
			}
			if format == formatCSV {
				return rows.writeCSV(out)
			}
			fmt.Fprintf(out, "Run %s: %d decisions compared with live traffic, %d would change.\n", run, res.Compared, res.Changed)
			if res.Changed == 0 {
				return nil
			}
			counts := table{header: []string{"destination", "live", "replay", "fields_changed", "count"}}
			for _, c := range res.Counts {
				live := "(none)"
				if c.LiveOutcome != "" {
					live = c.LiveOutcome + "/" + c.LiveReason
				}
				counts.add(c.Destination, live, c.ReplayOutcome+"/"+c.ReplayReason, strconv.FormatBool(c.FieldsChanged), u64(c.Count))
			}
			fmt.Fprintln(out)
			if err := counts.writeText(out); err != nil {
				return err
			}
			fmt.Fprintln(out)
			if uint64(len(res.Rows)) < res.Changed {
				fmt.Fprintf(out, "First %d of %d changed decisions (--limit 0 for all):\n", len(res.Rows), res.Changed)
			}
			return rows.writeText(out)
		})
	cmd.Flags().StringVar(&run, "run", "", "the replay's run id (required)")
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many changed decisions (0: all); counts always cover all")
	return cmd
}

// sortByDestination orders rows by destination, keeping the time order within one.
func sortByDestination(rows []audit.UserReportRow) {
	slices.SortStableFunc(rows, func(a, b audit.UserReportRow) int { return strings.Compare(a.Destination, b.Destination) })
}

// nonNil turns a nil slice into an empty one, so JSON shows [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// loadAudit loads the config (and policy) of a command and opens its audit database; the caller
// closes the database.
func loadAudit(cmd *cobra.Command) (*app, *audit.DB, error) {
	a, err := load(cmd)
	if err != nil {
		return nil, nil, err
	}
	db, err := openAudit(cmd.Context(), a)
	if err != nil {
		return nil, nil, err
	}
	return a, db, nil
}

// openAudit connects to the audit database and brings its schema up to date, so a command run
// before any audit writer still finds the tables.
func openAudit(ctx context.Context, a *app) (*audit.DB, error) {
	db, err := audit.Open(ctx, a.cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
