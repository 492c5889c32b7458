package sdk

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

func TestCheckAllowedHost(t *testing.T) {
	d := config.Delivery{AllowedHosts: []string{"hooks.example.com", "*.googleapis.com"}}
	dest := func(key, url string) *policy.Destination {
		return &policy.Destination{Name: "ops", Config: map[string]any{key: url}}
	}
	require.NoError(t, CheckAllowedHost(d, dest("url", "https://hooks.example.com/x")))
	require.NoError(t, CheckAllowedHost(d, dest("endpoint", "https://datamanager.googleapis.com")))
	require.NoError(t, CheckAllowedHost(d, &policy.Destination{Name: "meta", Config: map[string]any{}}), "vendor default host")
	err := CheckAllowedHost(d, dest("url", "https://hooks.example.com.evil.io/x"))
	require.EqualError(t, err, `destinations.ops.config.url: host "hooks.example.com.evil.io" is not in delivery.allowed_hosts [hooks.example.com *.googleapis.com] of the config`)
	require.Error(t, CheckAllowedHost(d, dest("url", "http://user@169.254.169.254/")))
	require.NoError(t, CheckAllowedHost(config.Delivery{}, dest("url", "https://anywhere.example")), "no list")
}
