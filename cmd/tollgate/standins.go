package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/internal/logging"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

// newStandinsCmd serves local stand-ins of the vendor APIs that answer like the real ones, for
// the demo and for trying a policy without sending anything to a vendor.
func newStandinsCmd() *cobra.Command {
	addrs := map[string]*string{}
	cmd := &cobra.Command{
		Use:   "standins [--ga4 ADDR] [--meta ADDR] [--tiktok ADDR] [--google-ads ADDR] [--webhook ADDR]",
		Short: "Serve local stand-ins of the vendor APIs (for the demo and tests)",
		Long: `Serves stand-ins that answer like the vendors' APIs and log one line per request (no bodies).
With OPS_HOOK_SECRET set, the webhook stand-in verifies Standard Webhooks signatures with it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serve := map[string]string{}
			for kind, addr := range addrs {
				if *addr != "" {
					serve[kind] = *addr
				}
			}
			if len(serve) == 0 {
				return usageError{fmt.Errorf("name at least one stand-in address, e.g. --meta 127.0.0.1:9102")}
			}
			var opts []standin.Option
			if s := os.Getenv("OPS_HOOK_SECRET"); s != "" {
				opts = append(opts, standin.WithWebhookSecret(s))
			}
			log := logging.New()
			return standin.Run(cmd.Context(), serve, log, opts...)
		},
	}
	// One flag per destination type; the flag names are the short forms the demo uses.
	flags := map[string]string{"ga4": policy.TypeGA4, "meta": policy.TypeMetaCAPI, "tiktok": policy.TypeTikTok,
		"google-ads": policy.TypeGoogleAds, "webhook": policy.TypeWebhook}
	for flag, kind := range flags {
		addrs[kind] = cmd.Flags().String(flag, "", "serve the "+kind+" stand-in on this address")
	}
	return cmd
}
