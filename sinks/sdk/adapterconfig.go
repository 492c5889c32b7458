package sdk

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// HTTPConfig holds the config keys every HTTP adapter accepts. Adapters embed it in their own
// config struct with `yaml:",inline"`.
type HTTPConfig struct {
	// AllowPrivateNetwork lets the destination reach loopback, private, link-local and CGNAT
	// addresses (stand-ins in tests and demos, a proxy inside the cluster). Default false: such
	// addresses are refused at start (CheckAddress) and at each connection (NewHTTPClient).
	AllowPrivateNetwork bool `yaml:"allow_private_network"`
	// Timeout bounds one request (e.g. "1500ms"). Default: the vendor's recommendation, see each
	// adapter's Timeout method.
	Timeout time.Duration `yaml:"timeout"`
	// RateLimit is the most requests per second sent to this destination (e.g. 5 for Google's
	// Data Manager quota of 300 per minute). Default: delivery.rate_limit; 0 means no limit.
	// The runner reads it (RateLimit); adapters only accept the key.
	RateLimit float64 `yaml:"rate_limit"`
}

// RateLimit returns the destination's config.rate_limit when it sets one.
func RateLimit(dest *policy.Destination) (float64, bool) {
	switch v := dest.Config["rate_limit"].(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// TimeoutOr returns the configured timeout, or def when none is set.
func (c HTTPConfig) TimeoutOr(def time.Duration) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return def
}

// ConfigField names a config key of a destination the way policy errors do:
// "destinations.meta.config.pixel_id".
func ConfigField(dest *policy.Destination, key string) string {
	return "destinations." + dest.Name + ".config." + key
}

// ConfigError is a *policy.FieldError for a config key: "destinations.meta.config.pixel_id: is
// required".
func ConfigError(dest *policy.Destination, key, format string, args ...any) error {
	return &policy.FieldError{Field: ConfigField(dest, key), Reason: fmt.Sprintf(format, args...)}
}

// DecodeConfig fills out (a pointer to a struct with yaml tags; embedded structs tagged
// `yaml:",inline"` count as their fields) from the destination's config map. Each key is decoded
// on its own so a wrong type names its key, and an unknown key is an error: a misspelt
// "pixel_idd" must stop the start, not leave the pixel unset.
func DecodeConfig(dest *policy.Destination, out any) error {
	fields := map[string]reflect.Value{}
	collectFields(reflect.ValueOf(out).Elem(), fields)
	keys := make([]string, 0, len(dest.Config))
	for k := range dest.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			return ConfigError(dest, k, "unknown key (known: %s)", strings.Join(known, ", "))
		}
		text, err := yaml.Marshal(dest.Config[k])
		if err != nil {
			return ConfigError(dest, k, "%v", err)
		}
		if err := yaml.Unmarshal(text, f.Addr().Interface()); err != nil {
			// yaml's own message is multi-line and points into the re-marshalled snippet: say what is wanted.
			return ConfigError(dest, k, "must be %s", kindName(f.Type()))
		}
	}
	return nil
}

func collectFields(v reflect.Value, into map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		switch {
		case opts == "inline" && t.Field(i).Type.Kind() == reflect.Struct:
			collectFields(v.Field(i), into)
		case name != "" && name != "-":
			into[name] = v.Field(i)
		}
	}
}

func kindName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return `a duration such as "1500ms"`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Map:
		return "a mapping"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	}
	return "a " + t.Kind().String()
}

// Required returns an error naming key when value is empty.
func Required(dest *policy.Destination, key, value string) error {
	if strings.TrimSpace(value) == "" {
		return ConfigError(dest, key, "is required")
	}
	return nil
}

// Secret reads a secret from the environment variable that the config key names (secrets are
// never in the policy file itself). The error names the key and the variable, never a value.
func Secret(dest *policy.Destination, env Env, key, varName string) (string, error) {
	if varName == "" {
		return "", ConfigError(dest, key, "is required (the name of the environment variable holding the secret)")
	}
	v, ok := env(varName)
	if !ok || v == "" {
		return "", ConfigError(dest, key, "environment variable %s is not set", varName)
	}
	return v, nil
}

// BaseURL parses a base URL from config key (def when raw is empty): http or https, a host, no
// query or fragment. The result has no trailing slash, so callers append the vendor's path.
func BaseURL(dest *policy.Destination, key, raw, def string) (string, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", ConfigError(dest, key, "%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", ConfigError(dest, key, "%q must start with http:// or https://", raw)
	case u.Host == "":
		return "", ConfigError(dest, key, "%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return "", ConfigError(dest, key, "%q must not have a query or fragment (the vendor's own path and query are added to it)", raw)
	case u.User != nil:
		return "", ConfigError(dest, key, "must not hold credentials (use the *_env keys)")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// RequireHashed returns an error when the destination receives one of paths without hashing it.
// Adapters call it for the identifiers their vendor only takes SHA-256 hashed (email, phone…):
// sending them raw would leak PII, and hashing them here would duplicate (and could disagree
// with) the consent processor's per-vendor normalisation, so the policy has to say hash.
func RequireHashed(dest *policy.Destination, vendor string, paths ...string) error {
	for _, p := range paths {
		if slices.Contains(dest.Fields, p) && !slices.Contains(dest.Hash, p) {
			return &policy.FieldError{Field: "destinations." + dest.Name + ".hash",
				Reason: fmt.Sprintf("must include %s (%s accepts it only SHA-256 hashed)", p, vendor)}
		}
	}
	return nil
}
