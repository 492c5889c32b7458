package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/report"
)

const formatHTML = "html"

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Evidence for privacy teams: access reports, the record of processing, a policy fix's exposure"}
	cmd.AddCommand(newReportAccessCmd(), newReportProcessingCmd(), newReportExposureCmd())
	return cmd
}

// reportOutput opens --out (stdout when empty); the returned close reports write errors.
func reportOutput(cmd *cobra.Command, path string) (io.Writer, func() error, error) {
	if path == "" {
		return cmd.OutOrStdout(), func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--out: %w", err)
	}
	return f, f.Close, nil
}

func newReportAccessCmd() *cobra.Command {
	var user, format, out string
	cmd := &cobra.Command{
		Use:   "access --config FILE --user ID [--format html|json] [--out FILE]",
		Short: "The data-subject access report: per destination, what was sent about the user, when, on what basis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(user) == "" {
				return usageError{fmt.Errorf("--user ID is required (the user_id, or the anonymous_id for an anonymous user)")}
			}
			if format != formatHTML && format != formatJSON {
				return usageError{fmt.Errorf("--format %q: use html or json", format)}
			}
			a, db, err := loadAudit(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			defer db.Close()
			acc, err := report.BuildAccess(ctx, db, a.cfg.Policy, user, time.Now())
			if err != nil {
				return err
			}
			acc.AnonymizeAfter = report.Age(a.cfg.ClickHouse.Retention.AnonymizeAfter)
			w, done, err := reportOutput(cmd, out)
			if err != nil {
				return err
			}
			if format == formatJSON {
				err = writeJSON(w, acc)
			} else {
				err = acc.WriteHTML(w)
			}
			if cerr := done(); err == nil {
				err = cerr
			}
			return err
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&user, "user", "", "the user_id, or the anonymous_id for an anonymous user (required)")
	cmd.Flags().StringVar(&format, "format", formatHTML, "output format: html or json")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

func newReportProcessingCmd() *cobra.Command {
	var format, out string
	cmd := &cobra.Command{
		Use:   "processing --config FILE [--format html|json|csv] [--out FILE]",
		Short: "The record of processing generated from the policy: per destination its purpose, basis, fields, hashing, rules and retention",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != formatHTML && format != formatJSON && format != formatCSV {
				return usageError{fmt.Errorf("--format %q: use html, json or csv", format)}
			}
			path, _ := cmd.Flags().GetString("config")
			if path == "" {
				return usageError{fmt.Errorf("--config FILE is required")}
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			rec := report.BuildProcessing(cfg, time.Now())
			w, done, err := reportOutput(cmd, out)
			if err != nil {
				return err
			}
			switch format {
			case formatJSON:
				err = writeJSON(w, rec)
			case formatCSV:
				err = rec.WriteCSV(w)
			default:
				err = rec.WriteHTML(w)
			}
			if cerr := done(); err == nil {
				err = cerr
			}
			return err
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&format, "format", formatHTML, "output format: html, json or csv")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

func newReportExposureCmd() *cobra.Command {
	var runID, format, out string
	var users bool
	cmd := &cobra.Command{
		Use:   "exposure --config FILE --run ID [--format html|json|csv] [--users] [--out FILE]",
		Short: "What live traffic sent that a replay run's (fixed) policy would not have, per destination",
		Long: `For a replay run (tollgate replay), per destination: the events live traffic sent that the
replayed policy blocks (count, people, first and last event time, by the replayed reason) and the
field paths it sent that the replayed policy strips, with the people concerned (--users lists their
keys). For assessing a breach (GDPR Art. 33, 34) and telling the recipients (Art. 19).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runID == "" {
				return usageError{fmt.Errorf("--run ID is required (the id tollgate replay printed)")}
			}
			if format != formatHTML && format != formatJSON && format != formatCSV {
				return usageError{fmt.Errorf("--format %q: use html, json or csv", format)}
			}
			a, db, err := loadAudit(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			exp, err := report.BuildExposure(cmd.Context(), db, a.cfg.Policy, runID, users, time.Now())
			if err != nil {
				return err
			}
			w, done, err := reportOutput(cmd, out)
			if err != nil {
				return err
			}
			switch format {
			case formatJSON:
				err = writeJSON(w, exp)
			case formatCSV:
				err = exp.WriteCSV(w)
			default:
				err = exp.WriteHTML(w)
			}
			if cerr := done(); err == nil {
				err = cerr
			}
			return err
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "the replay run (required)")
	cmd.Flags().StringVar(&format, "format", formatHTML, "output format: html, json or csv")
	cmd.Flags().BoolVar(&users, "users", false, "list the keys of the users concerned")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}
