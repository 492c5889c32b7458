package main

import (
	"fmt"
	"io"
	"os"

	"time"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/cmd/tollgate/policytest"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/processors/consent"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Explain and test the consent policy with the processor's own engine"}
	cmd.AddCommand(newPolicyExplainCmd(), newPolicyTestCmd())
	return cmd
}

// loadPolicy reads the config and its policy only: policy tools need no secrets and no services.
func loadPolicy(cmd *cobra.Command) (*policy.Policy, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		return nil, usageError{fmt.Errorf("--config FILE is required")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg.Policy, nil
}

func newPolicyTestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test --config FILE DIR",
		Short: "Run every *.yaml case of DIR through the consent engine; exit 1 on any failure",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("policy test takes one DIR of *.yaml cases, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := loadPolicy(cmd)
			if err != nil {
				return err
			}
			return runPolicyTest(args[0], pol, cmd.OutOrStdout())
		},
	}
	configFlag(cmd)
	return cmd
}

// runPolicyTest is the command's logic: a line per failing case, the closing count, and an
// error (exit 1) when any case failed or a case file is bad.
func runPolicyTest(dir string, pol *policy.Policy, out io.Writer) error {
	s, err := policytest.RunDir(dir, pol, out)
	if err != nil {
		return err
	}
	if s.Failed > 0 {
		return fmt.Errorf("policy test %s: %d of %d cases failed", dir, s.Failed, s.Passed+s.Failed)
	}
	return nil
}

func newPolicyExplainCmd() *cobra.Command {
	var (
		eventFile string
		format    string
	)
	cmd := &cobra.Command{
		Use:   "explain --config FILE --event FILE.json [--format text|json]",
		Short: "Show, per destination, each consent rule in order, the one that decided, and the fields kept, stripped and hashed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if eventFile == "" {
				return usageError{fmt.Errorf("--event FILE.json is required (one event as sent to POST /v1/events)")}
			}
			if format != "text" && format != formatJSON {
				return usageError{fmt.Errorf("--format %q: use text or json", format)}
			}
			pol, err := loadPolicy(cmd)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(eventFile)
			if err != nil {
				return fmt.Errorf("policy explain: %w", err)
			}
			ev, err := policytest.DecodeJSON(b)
			if err != nil {
				return fmt.Errorf("%s: %w", eventFile, err)
			}
			recorded, err := recordedFlags(cmd)
			if err != nil {
				return err
			}
			ex := consent.Explain(ev, recorded, pol, time.Now())
			if format == formatJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"policy_version": pol.Version, "event_id": ev.EventID, "destinations": ex})
			}
			return writeExplanation(cmd.OutOrStdout(), pol.Version, ex)
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&eventFile, "event", "", "one event as JSON, as sent to POST /v1/events (required)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringToString("recorded", nil, "the user's recorded consent, e.g. analytics=false,marketing=true")
	cmd.Flags().Bool("erased", false, "decide as if the user had been erased")
	return cmd
}

// recordedFlags builds the recorded state from --recorded and --erased (nil: nothing recorded).
func recordedFlags(cmd *cobra.Command) (*consent.State, error) {
	m, _ := cmd.Flags().GetStringToString("recorded")
	erased, _ := cmd.Flags().GetBool("erased")
	if len(m) == 0 && !erased {
		return nil, nil
	}
	st := &consent.State{Consent: map[string]bool{}, Erased: erased}
	for k, v := range m {
		switch v {
		case "true":
			st.Consent[k] = true
		case "false":
			st.Consent[k] = false
		default:
			return nil, usageError{fmt.Errorf("--recorded %s=%s: use true or false", k, v)}
		}
	}
	return st, nil
}

func writeExplanation(out io.Writer, version string, ex []consent.Explanation) error {
	fmt.Fprintf(out, "policy version %s\n", version)
	for _, e := range ex {
		fmt.Fprintf(out, "\n%s (purpose %s, jurisdiction %s, model %s): %s, %s\n", e.Destination, e.Purpose, e.Jurisdiction, e.Model, e.Outcome, e.Reason)
		if e.Held {
			fmt.Fprintf(out, "  HELD: the user has made no choice about %s yet; the policy's hold keeps the event up to %s for it,\n"+
				"  then decides it under the choice, or as above (%s, %s) if none arrives\n", e.Purpose, e.HoldWindow, e.Outcome, e.Reason)
		}
		for i, s := range e.Rules {
			mark := "no"
			switch {
			case !s.Evaluated:
				mark = "-"
			case s.Applies:
				mark = "DECIDES " + s.Reason
			}
			fmt.Fprintf(out, "  %d. %-14s %s\n", i+1, s.Rule, mark)
		}
		fmt.Fprintf(out, "  fields kept:     %s\n", list(e.FieldsKept))
		fmt.Fprintf(out, "  fields hashed:   %s\n", list(e.FieldsHashed))
		fmt.Fprintf(out, "  fields stripped: %s\n", list(e.FieldsStripped))
	}
	return nil
}
