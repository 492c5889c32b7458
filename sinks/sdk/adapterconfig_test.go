package sdk_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

type testConfig struct {
	sdk.HTTPConfig `yaml:",inline"`
	PixelID        string            `yaml:"pixel_id"`
	Names          map[string]string `yaml:"names"`
	Max            int               `yaml:"max"`
}

func TestDecodeConfig(t *testing.T) {
	d := &policy.Destination{Name: "meta", Config: map[string]any{
		"pixel_id": 123, "allow_private_network": true, "timeout": "1500ms", "names": map[string]any{"a": "B"},
	}}
	var c testConfig
	require.NoError(t, sdk.DecodeConfig(d, &c))
	require.Equal(t, testConfig{HTTPConfig: sdk.HTTPConfig{AllowPrivateNetwork: true, Timeout: 1500 * time.Millisecond},
		PixelID: "123", Names: map[string]string{"a": "B"}}, c)
	require.Equal(t, 1500*time.Millisecond, c.TimeoutOr(time.Second))
}

func TestDecodeConfigErrors(t *testing.T) {
	for cfg, want := range map[string]map[string]any{
		"destinations.meta.config.pixel_idd: unknown key (known: allow_private_network, max, names, pixel_id, rate_limit, timeout)": {"pixel_idd": "1"},
		"destinations.meta.config.max: must be a number":                        {"max": "lots"},
		"destinations.meta.config.timeout: must be a duration such as":          {"timeout": "soon"},
		"destinations.meta.config.allow_private_network: must be true or false": {"allow_private_network": "yes please"},
	} {
		var c testConfig
		require.ErrorContains(t, sdk.DecodeConfig(&policy.Destination{Name: "meta", Config: want}, &c), cfg)
	}
}

func TestSecret(t *testing.T) {
	d := &policy.Destination{Name: "meta"}
	env := func(k string) (string, bool) { return map[string]string{"SET": "s3cret", "EMPTY": ""}[k], k != "UNSET" }
	v, err := sdk.Secret(d, env, "access_token_env", "SET")
	require.NoError(t, err)
	require.Equal(t, "s3cret", v)
	_, err = sdk.Secret(d, env, "access_token_env", "UNSET")
	require.EqualError(t, err, "destinations.meta.config.access_token_env: environment variable UNSET is not set")
	_, err = sdk.Secret(d, env, "access_token_env", "EMPTY")
	require.EqualError(t, err, "destinations.meta.config.access_token_env: environment variable EMPTY is not set")
	_, err = sdk.Secret(d, env, "access_token_env", "")
	require.EqualError(t, err, "destinations.meta.config.access_token_env: is required (the name of the environment variable holding the secret)")
}

func TestBaseURL(t *testing.T) {
	d := &policy.Destination{Name: "ga4"}
	u, err := sdk.BaseURL(d, "endpoint", "", "https://www.google-analytics.com")
	require.NoError(t, err)
	require.Equal(t, "https://www.google-analytics.com", u)
	u, err = sdk.BaseURL(d, "endpoint", "http://127.0.0.1:9101/proxy/", "x")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9101/proxy", u)
	for raw, want := range map[string]string{
		"ftp://x":            "must start with http:// or https://",
		"http://":            "has no host",
		"http://x/?a=1":      "must not have a query or fragment",
		"https://u:p@x.test": "must not hold credentials",
	} {
		_, err := sdk.BaseURL(d, "endpoint", raw, "")
		require.ErrorContains(t, err, "destinations.ga4.config.endpoint: ")
		require.ErrorContains(t, err, want, raw)
	}
}

func TestRequireHashed(t *testing.T) {
	d := &policy.Destination{Name: "meta", Fields: []string{"properties.email", "properties.phone"}, Hash: []string{"properties.email"}}
	require.NoError(t, sdk.RequireHashed(d, "meta_capi", "properties.email", "properties.city"))
	require.EqualError(t, sdk.RequireHashed(d, "meta_capi", "properties.email", "properties.phone"),
		"destinations.meta.hash: must include properties.phone (meta_capi accepts it only SHA-256 hashed)")
}
