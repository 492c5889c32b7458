// Command tollgate is the one binary of every tollgate component: ingest, the consent processor,
// the vendor sinks and the audit writer, together (`run`) or one per process.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	setGCPercent()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		// One line naming the problem: scripts and people read the first line only.
		fmt.Fprintln(os.Stderr, "tollgate:", oneLine(err))
		os.Exit(exitCode(err))
	}
}

// gcPercent is the collector's GOGC unless the environment sets one. Every component allocates
// many short-lived objects per event over a small live heap, so at Go's default of 100 the
// collector ran often: its mark work was 4–18 % of the components' CPU in make bench profiles.
// 200 halves how often it runs for twice the heap headroom (GOMEMLIMIT, when set, still caps it).
const gcPercent = 200

func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tollgate",
		Short:         "Consent-enforcing server-side event pipeline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Bad flags are usage errors (exit 2); subcommands inherit this.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(),
		newRunCmd(),
		newIngestCmd(),
		newProcessCmd(),
		newSinkCmd(),
		newAuditCmd(),
		newReplayCmd(),
		newRepairCmd(),
		newEraseCmd(),
		newStandinsCmd(),
		newDLQCmd(),
		newPolicyCmd(),
		newReportCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "tollgate", version) },
	}
}

// usageError marks bad flags or arguments (exit code 2, like flag parsing errors).
type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
