// Package ga4 delivers events to the GA4 Measurement Protocol:
// POST {endpoint}/mp/collect?measurement_id=…&api_secret=… with one client's events.
//
// GA4 answers 2xx even to malformed payloads and has no idempotency key, so this adapter
// validates everything locally (names, lengths, counts, age) and cannot detect a lost or doubled
// request. A 5xx or a timeout is ambiguous — GA4 may have recorded the events — and a resend may
// double count them; the runner retries them anyway (docs/delivery.md) because losing them is worse
// for an analytics destination than a rare duplicate.
//
// Google forbids PII in GA4, hashed or not. The adapter never sends a field whose path mentions
// email or phone, a field the policy hashes (a digest still identifies a person), user ids, the
// IP address, or any value that looks like an email address or a digest — whatever the policy
// lists. client_id is the event's user key, which is already the site's pseudonymous id.
package ga4

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Limits and defaults of the Measurement Protocol.
const (
	DefaultEndpoint = "https://www.google-analytics.com" // EU: https://region1.google-analytics.com
	DefaultTimeout  = 5 * time.Second
	MaxBatch        = 25             // events per request
	MaxAge          = 72 * time.Hour // oldest timestamp GA4 accepts
	MaxParams       = 25             // params per event, engagement_time_msec included
	MaxValueLen     = 100            // characters per param value
	MaxNameLen      = 40             // characters per event or param name
	MaxBodyBytes    = 130_000        // GA4 drops bigger bodies
	engagementParam = "engagement_time_msec"
)

// config is the destination's `config` block.
type config struct {
	sdk.HTTPConfig `yaml:",inline"`
	// Endpoint replaces GA4's base URL (default https://www.google-analytics.com); path kept.
	Endpoint string `yaml:"endpoint"`
	// MeasurementID is the web stream's id ("G-…"). Required.
	MeasurementID string `yaml:"measurement_id"`
	// APISecretEnv names the environment variable holding the Measurement Protocol API secret.
	// Required.
	APISecretEnv string `yaml:"api_secret_env"`
	// EngagementTimeMsec is sent with every event (default 100): realtime reports ignore events
	// without it.
	EngagementTimeMsec int `yaml:"engagement_time_msec"`
}

// param is one key of an event's params: the field at path, named name, or (path "")
// engagement_time_msec, whose value is the config's.
type param struct{ path, name string }

type adapter struct {
	url        string  // includes the API secret: never log it
	params     []param // sorted by name: the order of the body's params object
	engagement string  // engagement_time_msec's value, formatted once
	timeout    time.Duration
	now        func() time.Time
}

// New builds the GA4 adapter from its policy entry.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	base, secret, err := sdk.DecodeAPI(dest, env, &c, sdk.API{DefaultEndpoint: DefaultEndpoint,
		Required: []string{"measurement_id"}, SecretEnv: "api_secret_env"})
	if err != nil {
		return nil, err
	}
	if c.EngagementTimeMsec < 0 {
		return nil, sdk.ConfigError(dest, "engagement_time_msec", "must not be negative")
	} else if c.EngagementTimeMsec == 0 {
		c.EngagementTimeMsec = 100
	}
	q := url.Values{"measurement_id": {c.MeasurementID}, "api_secret": {secret}}
	return &adapter{
		url:        base + "/mp/collect?" + q.Encode(),
		params:     paramsFor(dest),
		engagement: strconv.Itoa(c.EngagementTimeMsec),
		timeout:    c.TimeoutOr(DefaultTimeout),
		now:        time.Now,
	}, nil
}

// paramsFor picks, once, the fields that may become params: the policy's fields minus anything
// identifying, named by their path without the "context."/"properties." prefix. When two fields
// sanitise to the same name the first listed wins. With engagement_time_msec they are sorted by
// name, the order encoding/json gave the params map the body encoder replaced.
func paramsFor(dest *policy.Destination) []param {
	var out []param
	seen := map[string]bool{engagementParam: true}
	for _, path := range dest.Fields {
		if identifying(dest, path) {
			continue
		}
		_, name, _ := strings.Cut(path, ".")
		name = sanitise(name)
		if seen[name] || len(out) == MaxParams-1 {
			continue
		}
		seen[name] = true
		out = append(out, param{path: path, name: name})
	}
	out = append(out, param{name: engagementParam})
	slices.SortFunc(out, func(x, y param) int { return strings.Compare(x.name, y.name) })
	return out
}

// identifying reports whether a field may never reach GA4, whatever the policy lists.
func identifying(dest *policy.Destination, path string) bool {
	p := strings.ToLower(path)
	return strings.Contains(p, "email") || strings.Contains(p, "phone") ||
		p == "user_id" || p == "anonymous_id" || p == "context.ip" ||
		slices.Contains(dest.Hash, path)
}

var emailLike = regexp.MustCompile(`[^\s@/?&=]+@[^\s@/?&=]+\.[a-z]{2,}`)

// looksIdentifying catches PII in a value of an innocent-looking field: an address in a page
// URL's query string (also percent-encoded) or a digest.
func looksIdentifying(v string) bool {
	if sdk.IsHashed(v) {
		return true
	}
	if !strings.Contains(v, "@") && !strings.Contains(v, "%40") {
		return false
	}
	l := strings.ReplaceAll(strings.ToLower(v), "%40", "@")
	return emailLike.MatchString(l)
}

func (a *adapter) MaxBatch() int { return MaxBatch }

// BatchKey makes the runner group a batch by client: a request describes one client_id.
func (a *adapter) BatchKey(ev *schemas.FilteredEvent) string { return ev.UserKey }

// Timeout is 5 s unless the config sets one.
func (a *adapter) Timeout() time.Duration { return a.timeout }

// Validate refuses events GA4 would silently drop: older than 72 h, or without a client id.
func (a *adapter) Validate(ev *schemas.FilteredEvent, now time.Time) error {
	if err := sdk.CheckAge(ev, now, MaxAge, "ga4"); err != nil {
		return err
	}
	if ev.UserKey == "" {
		return fmt.Errorf("event has no user key for client_id")
	}
	if ev.Event == "" {
		return fmt.Errorf("event has no name")
	}
	return nil
}

// NewRequest builds one Measurement Protocol request. Every event of the batch must have the
// same user key (sdk.SplitBatch does that with BatchKey).
func (a *adapter) NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error) {
	if len(batch) == 0 {
		return nil, fmt.Errorf("ga4: empty batch")
	}
	// One request has one consent block, from the vendor consent fields the processor derived
	// (sdk.VendorConsent); a client's events in one batch are the same user's. If they
	// disagree, DENIED wins.
	adUserData, adPersonalization := true, true
	for _, ev := range batch {
		if ev.UserKey != batch[0].UserKey {
			return nil, fmt.Errorf("ga4: batch mixes clients; split it with sdk.SplitBatch")
		}
		adUserData = adUserData && sdk.VendorConsent(ev, schemas.VendorAdUserData)
		adPersonalization = adPersonalization && sdk.VendorConsent(ev, schemas.VendorAdPersonalization)
	}
	data := a.appendBody(make([]byte, 0, 128+256*len(batch)), batch, grant(adUserData), grant(adPersonalization))
	if len(data) > MaxBodyBytes {
		return nil, fmt.Errorf("ga4: body of %d bytes exceeds GA4's %d", len(data), MaxBodyBytes)
	}
	return sdk.PostBody(ctx, "ga4", a.url, data)
}

// paramValue is the value an event gives a param: a JSON number as is (number true), else a
// string GA4 may see, truncated to MaxValueLen characters. ok is false when the param is left
// out: the field is absent or empty, or its value looks identifying.
func (a *adapter) paramValue(ev *schemas.FilteredEvent, p param) (v string, number, ok bool) {
	if p.path == "" {
		return a.engagement, true, true
	}
	raw := strings.TrimSpace(ev.Fields[p.path])
	if raw == "" {
		return "", false, false
	}
	if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
		if json.Valid([]byte(raw)) {
			return raw, true, true
		}
	}
	s, ok := sdk.FieldString(ev, p.path)
	if !ok || looksIdentifying(s) {
		return "", false, false
	}
	return truncate(s, MaxValueLen), false, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i]
}

// reservedNames are event names GA4 keeps for itself; reservedPrefixes likewise for event and
// param names. A tollgate name that collides gets a "tg_" prefix instead of being dropped.
var (
	reservedNames = map[string]bool{
		"ad_activeview": true, "ad_click": true, "ad_exposure": true, "ad_query": true,
		"ad_reward": true, "adunit_exposure": true, "app_background": true, "app_clear_data": true,
		"app_exception": true, "app_remove": true, "app_store_refund": true, "app_update": true,
		"app_store_subscription_cancel": true, "app_store_subscription_convert": true,
		"app_store_subscription_renew": true, "app_upgrade": true, "dynamic_link_app_open": true,
		"dynamic_link_app_update": true, "dynamic_link_first_open": true, "error": true,
		"first_open": true, "first_visit": true, "in_app_purchase": true, "notification_dismiss": true,
		"notification_foreground": true, "notification_open": true, "notification_receive": true,
		"os_update": true, "session_start": true, "session_start_with_rollout": true,
		"user_engagement": true,
	}
	reservedPrefixes = []string{"firebase_", "ga_", "google_", "gtag_"}
)

// sanitise makes a GA4 name: [A-Za-z][A-Za-z0-9_]{0,39}. Other characters become "_", leading
// non-letters are dropped, reserved names and prefixes get "tg_" in front.
func sanitise(s string) string {
	b := make([]byte, 0, len(s))
	for _, c := range s { // by rune: "käse" becomes "k_se", not "k__se"
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			b = append(b, byte(c))
		case len(b) == 0: // a name starts with a letter
		case c >= '0' && c <= '9', c == '_':
			b = append(b, byte(c))
		default:
			b = append(b, '_')
		}
	}
	name := string(b)
	if name == "" {
		name = "event"
	}
	lower := strings.ToLower(name)
	if reservedNames[lower] || slices.ContainsFunc(reservedPrefixes, func(p string) bool { return strings.HasPrefix(lower, p) }) {
		name = "tg_" + name
	}
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	return name
}

// Classify reads a Measurement Protocol answer. GA4 says 2xx to everything it parses, so only the
// HTTP status carries information (sdk.ClassifyStatus): 2xx Delivered, 429/5xx Retry, other
// statuses Permanent (GA4's advice: don't resend a refused request unchanged).
func (a *adapter) Classify(status int, header http.Header, _ []byte, _ []*schemas.FilteredEvent) sdk.Verdict {
	return sdk.ClassifyStatus(status, header, a.now())
}

// grant is GA4's consent value.
func grant(ok bool) string {
	if ok {
		return "GRANTED"
	}
	return "DENIED"
}
