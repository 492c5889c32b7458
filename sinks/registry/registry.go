// Package registry maps each policy destination type to its adapter constructor. It lives apart
// from sinks/sdk because the adapters import sdk: sdk importing them back would be a cycle. The map is assembled here, in one place and without init() side effects, so reading
// this file tells every type tollgate can deliver to.
package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/ga4"
	"github.com/tollgate-dev/tollgate/sinks/googleads"
	"github.com/tollgate-dev/tollgate/sinks/meta"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
	"github.com/tollgate-dev/tollgate/sinks/tiktok"
	"github.com/tollgate-dev/tollgate/sinks/webhook"
)

// Constructors has one entry per policy.DestinationTypes entry (a test keeps them in step).
var Constructors = map[string]sdk.Constructor{
	policy.TypeGA4:       ga4.New,
	policy.TypeMetaCAPI:  meta.New,
	policy.TypeTikTok:    tiktok.New,
	policy.TypeGoogleAds: googleads.New,
	policy.TypeWebhook:   webhook.New,
}

// New builds the adapter of a destination, validating its config. An unknown type is an error
// naming the field (policy.Parse refuses unknown types already; this guards other callers).
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	c, ok := Constructors[dest.Type]
	if !ok {
		known := make([]string, 0, len(Constructors))
		for t := range Constructors {
			known = append(known, t)
		}
		slices.Sort(known)
		return nil, &policy.FieldError{Field: "destinations." + dest.Name + ".type",
			Reason: fmt.Sprintf("no adapter for destination type %q (known: %s)", dest.Type, strings.Join(known, ", "))}
	}
	if v, ok := sdk.RateLimit(dest); ok && v < 0 {
		return nil, &policy.FieldError{Field: sdk.ConfigField(dest, "rate_limit"), Reason: "must not be negative"}
	}
	return c(dest, env)
}
