package sdk_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

func TestRefusedAddress(t *testing.T) {
	for addr, refused := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true,
		"172.31.255.255": true, "192.168.1.1": true, "169.254.169.254": true, "100.64.0.1": true,
		"100.127.255.254": true, "0.0.0.0": true, "::": true, "fd00::1": true, "fe80::1": true,
		"::ffff:10.0.0.1": true, "::ffff:127.0.0.1": true, "224.0.0.1": true,
		"8.8.8.8": false, "172.32.0.1": false, "100.128.0.1": false, "2a03:2880:f12f::1": false,
		"157.240.1.35": false,
	} {
		require.Equal(t, refused, sdk.RefusedAddress(netip.MustParseAddr(addr)), addr)
	}
}

func dest(cfg map[string]any) *policy.Destination {
	return &policy.Destination{Name: "hook", Type: "webhook", Config: cfg}
}

func TestNewHTTPClientRefusesLoopbackUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()

	_, err := sdk.NewHTTPClient(dest(nil), time.Second, 1).Get(srv.URL)
	require.Error(t, err)
	require.True(t, errors.Is(err, sdk.ErrPrivateAddress), err)

	resp, err := sdk.NewHTTPClient(dest(map[string]any{"allow_private_network": true}), time.Second, 1).Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode)
}

// A string "true" is not the boolean the policy must say.
func TestAllowPrivateNetworkNeedsBoolean(t *testing.T) {
	require.False(t, sdk.AllowPrivateNetwork(dest(map[string]any{"allow_private_network": "true"})))
	require.True(t, sdk.AllowPrivateNetwork(dest(map[string]any{"allow_private_network": true})))
}

func TestNewHTTPClientDoesNotFollowRedirects(t *testing.T) {
	var followed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := sdk.NewHTTPClient(dest(map[string]any{"allow_private_network": true}), time.Second, 1).Post(srv.URL, "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.False(t, followed)
}

// The guard checks the destination, not a proxy: HTTP(S)_PROXY is ignored.
func TestNewHTTPClientIgnoresProxyEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	resp, err := sdk.NewHTTPClient(dest(map[string]any{"allow_private_network": true}), time.Second, 1).Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
}

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		err  string
	}{
		{"loopback endpoint", map[string]any{"endpoint": "http://127.0.0.1:9102"},
			"destinations.hook.config.endpoint: 127.0.0.1 resolves to 127.0.0.1, which is loopback, private, link-local, CGNAT or unspecified (set allow_private_network: true to allow it)"},
		{"metadata url", map[string]any{"url": "http://169.254.169.254/latest/meta-data"},
			"destinations.hook.config.url: 169.254.169.254 resolves to 169.254.169.254, which is loopback, private, link-local, CGNAT or unspecified (set allow_private_network: true to allow it)"},
		{"ipv6 loopback", map[string]any{"url": "http://[::1]:8080/hook"},
			"destinations.hook.config.url: ::1 resolves to ::1, which is loopback, private, link-local, CGNAT or unspecified (set allow_private_network: true to allow it)"},
		{"localhost by name", map[string]any{"url": "http://localhost:8080/hook"},
			"destinations.hook.config.url: localhost resolves to"},
		{"not a url", map[string]any{"url": "hook"}, `destinations.hook.config.url: "hook" is not an absolute URL`},
		{"allowed", map[string]any{"url": "http://127.0.0.1/hook", "allow_private_network": true}, ""},
		{"public literal", map[string]any{"endpoint": "https://157.240.1.35"}, ""},
		{"vendor default", map[string]any{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sdk.CheckAddress(dest(tc.cfg))
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
