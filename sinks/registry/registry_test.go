package registry

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Every type a policy may name has an adapter, and every adapter is reachable from a policy.
func TestConstructorsMatchPolicyTypes(t *testing.T) {
	got := slices.Sorted(maps.Keys(Constructors))
	want := slices.Sorted(slices.Values(policy.DestinationTypes))
	require.Equal(t, want, got)
	for typ, c := range Constructors {
		require.NotNil(t, c, typ)
	}
}

func TestNewUnknownType(t *testing.T) {
	_, err := New(&policy.Destination{Name: "x", Type: "snowflake"}, nil)
	require.EqualError(t, err, `destinations.x.type: no adapter for destination type "snowflake" (known: ga4, google_ads, meta_capi, tiktok, webhook)`)
}

// The demo policy's destinations build with their secrets set, and name the variable when not.
func TestNewDemoPolicy(t *testing.T) {
	p, err := policy.Load("../../deploy/demo/policy.yaml")
	require.NoError(t, err)
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"GA4_API_SECRET": "s", "META_TOKEN": "t", "OPS_HOOK_SECRET": "whsec_c2VjcmV0"}[k]
		return v, ok
	}
	for _, name := range p.Names {
		a, err := New(p.Destinations[name], env)
		require.NoError(t, err, name)
		require.Positive(t, a.MaxBatch(), name)
	}
	none := func(string) (string, bool) { return "", false }
	_, err = New(p.Destinations["meta"], none)
	require.EqualError(t, err, "destinations.meta.config.access_token_env: environment variable META_TOKEN is not set")
}
