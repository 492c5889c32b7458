package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// API names the config keys that New checks for a vendor with its own public API (every vendor
// but the webhook): the base URL under "endpoint", the keys that must be set (the pixel, stream
// or account the events go to) and the key naming the environment variable of the API's secret.
type API struct {
	// DefaultEndpoint is the vendor's base URL, used when the config sets no endpoint.
	DefaultEndpoint string
	// Required are config keys that must not be empty, checked in this order.
	Required []string
	// SecretEnv is the config key naming the environment variable that holds the API's token or
	// secret (Secret). Empty: the adapter reads its secret itself.
	SecretEnv string
}

// DecodeAPI is how New of a vendor with its own API starts: DecodeConfig into out, then the keys
// of api checked in order — "endpoint" (BaseURL), each Required key, SecretEnv (Secret) — so the
// first error names the first bad key. It returns the base URL (no trailing slash; the adapter
// appends the vendor's path) and the secret ("" without SecretEnv).
//
// out's struct must have a string field for "endpoint" and for each key of api: a missing one is
// the adapter's programming error, and panics.
func DecodeAPI(dest *policy.Destination, env Env, out any, api API) (base, secret string, err error) {
	if err := DecodeConfig(dest, out); err != nil {
		return "", "", err
	}
	fields := map[string]reflect.Value{}
	collectFields(reflect.ValueOf(out).Elem(), fields)
	value := func(key string) string {
		f, ok := fields[key]
		if !ok || f.Kind() != reflect.String {
			panic(fmt.Sprintf("sdk.DecodeAPI: %T has no string field for config key %q", out, key))
		}
		return f.String()
	}
	if base, err = BaseURL(dest, "endpoint", value("endpoint"), api.DefaultEndpoint); err != nil {
		return "", "", err
	}
	for _, key := range api.Required {
		if err := Required(dest, key, value(key)); err != nil {
			return "", "", err
		}
	}
	if api.SecretEnv != "" {
		if secret, err = Secret(dest, env, api.SecretEnv, value(api.SecretEnv)); err != nil {
			return "", "", err
		}
	}
	return base, secret, nil
}

// PostJSON returns a POST of body, encoded as JSON, to url with Content-Type application/json:
// the request of every vendor API. vendor names the vendor in its errors ("encode meta body: …").
// The adapter adds its own auth header, if any; req.ContentLength is the body's size, for
// vendors that limit it.
func PostJSON(ctx context.Context, vendor, url string, body any) (*http.Request, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %w", vendor, err)
	}
	return PostBody(ctx, vendor, url, data)
}

// PostBody is PostJSON for a body the adapter has already encoded (with the AppendJSON…
// functions, where json.Marshal costs too much): the same request, ContentLength included.
func PostBody(ctx context.Context, vendor, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s request: %w", vendor, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// EventNames maps tollgate event names to a vendor's.
type EventNames map[string]string

// NewEventNames is the vendor's standard events (purchase → Purchase, …), which the vendor's
// optimisation understands where a custom "purchase" would not count, overridden by the
// destination's own map (config event_names).
func NewEventNames(standard, configured map[string]string) EventNames {
	names := make(EventNames, len(standard)+len(configured))
	maps.Copy(names, standard)
	maps.Copy(names, configured)
	return names
}

// Of is the vendor's name for event: a name in neither map is sent unchanged (a custom event).
func (n EventNames) Of(event string) string {
	if v, ok := n[event]; ok {
		return v
	}
	return event
}
