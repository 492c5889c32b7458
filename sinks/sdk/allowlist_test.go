package sdk

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

func TestCheckAllowedHost(t *testing.T) {
	allowed := []string{"hooks.example.com", "*.googleapis.com"}
	dest := func(key, url string) *policy.Destination {
		return &policy.Destination{Name: "ops", Config: map[string]any{key: url}}
	}
	require.NoError(t, CheckAllowedHost(allowed, dest("url", "https://hooks.example.com/x")))
	require.NoError(t, CheckAllowedHost(allowed, dest("endpoint", "https://datamanager.googleapis.com")))
	require.NoError(t, CheckAllowedHost(allowed, &policy.Destination{Name: "meta", Config: map[string]any{}}), "vendor default host")
	err := CheckAllowedHost(allowed, dest("url", "https://hooks.example.com.evil.io/x"))
	require.EqualError(t, err, `destinations.ops.config.url: host "hooks.example.com.evil.io" is not in delivery.allowed_hosts [hooks.example.com *.googleapis.com] of the config`)
	require.Error(t, CheckAllowedHost(allowed, dest("url", "http://user@169.254.169.254/")))
	require.NoError(t, CheckAllowedHost(nil, dest("url", "https://anywhere.example")), "no list")
}

func TestHostAllowed(t *testing.T) {
	allowed := []string{"hooks.example.com", "*.example.org"}
	require.True(t, HostAllowed(allowed, "hooks.example.com"))
	require.True(t, HostAllowed(allowed, "a.b.EXAMPLE.org."))
	require.False(t, HostAllowed(allowed, "example.org"), "*.domain covers subdomains only")
	require.False(t, HostAllowed(allowed, "evil-example.org"))
	require.False(t, HostAllowed(allowed, "169.254.169.254"))
	require.True(t, HostAllowed(nil, "anything"), "no list: any host")
}
