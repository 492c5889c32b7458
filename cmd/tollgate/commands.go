package main

import (
	"github.com/spf13/cobra"
)

// newComponentCmd builds a command that runs some components until SIGTERM/SIGINT.
func newComponentCmd(use, short string, comps func(cmd *cobra.Command, a *app) ([]component, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := load(cmd)
			if err != nil {
				return err
			}
			cs, err := comps(cmd, a)
			if err != nil {
				return err
			}
			return runComponents(cmd.Context(), a, cs...)
		},
	}
	configFlag(cmd)
	return cmd
}

func fixed(cs ...component) func(*cobra.Command, *app) ([]component, error) {
	return func(*cobra.Command, *app) ([]component, error) { return cs, nil }
}

func newRunCmd() *cobra.Command {
	return newComponentCmd("run", "Run every component in one process",
		func(cmd *cobra.Command, a *app) ([]component, error) {
			s, err := sinkComponents(a, "")
			if err != nil {
				return nil, err
			}
			return append([]component{runIngest, runProcessor, runAudit}, s...), nil
		})
}

func newIngestCmd() *cobra.Command {
	return newComponentCmd("ingest", "Run the HTTP ingest service", fixed(runIngest))
}

func newProcessCmd() *cobra.Command {
	return newComponentCmd("process", "Run the consent processor", fixed(runProcessor))
}

func newSinkCmd() *cobra.Command {
	cmd := newComponentCmd("sink", "Run the vendor sinks (all destinations, or --destination NAME)",
		func(cmd *cobra.Command, a *app) ([]component, error) {
			only, _ := cmd.Flags().GetString("destination")
			return sinkComponents(a, only)
		})
	cmd.Flags().String("destination", "", "deliver only this destination")
	return cmd
}
