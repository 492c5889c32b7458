package sdk_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

type apiConfig struct {
	sdk.HTTPConfig `yaml:",inline"`
	Endpoint       string `yaml:"endpoint"`
	PixelID        string `yaml:"pixel_id"`
	TokenEnv       string `yaml:"token_env"`
}

var testAPI = sdk.API{DefaultEndpoint: "https://api.example.com/", Required: []string{"pixel_id"}, SecretEnv: "token_env"}

func TestDecodeAPI(t *testing.T) {
	env := func(k string) (string, bool) { return "s3cret", k == "TOKEN" }
	var c apiConfig
	base, secret, err := sdk.DecodeAPI(&policy.Destination{Name: "v", Config: map[string]any{"pixel_id": 42, "token_env": "TOKEN"}}, env, &c, testAPI)
	require.NoError(t, err)
	require.Equal(t, "https://api.example.com", base, "the default, without its trailing slash")
	require.Equal(t, "s3cret", secret)
	require.Equal(t, "42", c.PixelID)

	// Each check in order: the first bad key is the one named.
	for want, cfg := range map[string]map[string]any{
		"destinations.v.config.pixel_idd: unknown key":                           {"pixel_idd": "1", "endpoint": "ftp://x"},
		"destinations.v.config.endpoint: \"ftp://x\" must start with http://":    {"endpoint": "ftp://x"},
		"destinations.v.config.pixel_id: is required":                            {"token_env": "UNSET"},
		"destinations.v.config.token_env: environment variable UNSET is not set": {"pixel_id": "p", "token_env": "UNSET"},
	} {
		var c apiConfig
		_, _, err := sdk.DecodeAPI(&policy.Destination{Name: "v", Config: cfg}, env, &c, testAPI)
		require.ErrorContains(t, err, want)
	}

	// A key the config struct lacks is the adapter's bug, found by its first test.
	require.PanicsWithValue(t, `sdk.DecodeAPI: *sdk_test.apiConfig has no string field for config key "account_id"`, func() {
		var c apiConfig
		_, _, _ = sdk.DecodeAPI(&policy.Destination{Name: "v"}, env, &c, sdk.API{DefaultEndpoint: "https://api.example.com", Required: []string{"account_id"}})
	})
}

// PostJSON and PostBody (the body already encoded) make the same request.
func TestPostJSON(t *testing.T) {
	ctx := context.Background()
	for name, post := range map[string]func(url string) (*http.Request, error){
		"PostJSON": func(url string) (*http.Request, error) { return sdk.PostJSON(ctx, "v", url, map[string]int{"n": 1}) },
		"PostBody": func(url string) (*http.Request, error) { return sdk.PostBody(ctx, "v", url, []byte(`{"n":1}`)) },
	} {
		req, err := post("https://api.example.com/events")
		require.NoError(t, err, name)
		require.Equal(t, http.MethodPost, req.Method)
		require.Equal(t, "application/json", req.Header.Get("Content-Type"))
		require.EqualValues(t, len(`{"n":1}`), req.ContentLength, name)
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		require.Equal(t, `{"n":1}`, string(body), name)
		_, err = post("://bad")
		require.ErrorContains(t, err, "v request: ", name)
	}
	_, err := sdk.PostJSON(ctx, "v", "https://api.example.com", math.Inf(1))
	require.ErrorContains(t, err, "encode v body: ")
}

func TestEventNames(t *testing.T) {
	n := sdk.NewEventNames(map[string]string{"purchase": "Purchase", "lead": "Lead"}, map[string]string{"lead": "SubmitForm"})
	require.Equal(t, "Purchase", n.Of("purchase"))
	require.Equal(t, "SubmitForm", n.Of("lead"), "the destination's map wins")
	require.Equal(t, "my_event", n.Of("my_event"), "custom events unchanged")
}
