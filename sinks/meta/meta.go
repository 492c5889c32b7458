// Package meta delivers events to the Meta (Facebook) Conversions API:
// POST {endpoint}/{api_version}/{pixel_id}/events?access_token=… with {"data": [event, …]}.
//
// Meta rejects a whole request when one event in it is invalid or older than 7 days, so Validate
// catches locally everything that can be caught (age, missing user agent) before an event can
// poison its batch. Identifiers Meta matches on are taken only as the SHA-256 digests the consent
// processor wrote; the adapter never hashes (a second hash matches nobody) and never sends a
// value in a hashed slot that is not a digest.
package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Defaults, documented next to the config keys in config.
const (
	DefaultEndpoint   = "https://graph.facebook.com"
	DefaultAPIVersion = "v21.0"
	// DefaultTimeout is Meta's recommended client timeout.
	DefaultTimeout = 1500 * time.Millisecond
	// MaxBatch is Meta's limit of events per request.
	MaxBatch = 1000
	// MaxAge is the oldest event Meta accepts; one older event fails the whole request.
	MaxAge = 7 * 24 * time.Hour
)

// config is the destination's `config` block.
type config struct {
	sdk.HTTPConfig `yaml:",inline"`
	// Endpoint replaces Meta's base URL (default https://graph.facebook.com); the path is kept.
	Endpoint string `yaml:"endpoint"`
	// APIVersion is the Graph API version in the path (default v21.0).
	APIVersion string `yaml:"api_version"`
	// PixelID is the dataset (pixel) the events go to. Required.
	PixelID string `yaml:"pixel_id"`
	// AccessTokenEnv names the environment variable holding the access token. Required.
	AccessTokenEnv string `yaml:"access_token_env"`
	// TestEventCode routes events to Events Manager's test tab. Such events still count in
	// production measurement (Meta's rule), so leave it empty outside testing.
	TestEventCode string `yaml:"test_event_code"`
	// EventNames maps tollgate event names to Meta event names, on top of the built-in map of
	// standard events (purchase → Purchase, …). Names in neither are sent unchanged (custom events).
	EventNames map[string]string `yaml:"event_names"`
	// LDU "auto" flags events of users of a US state opt-out jurisdiction for Limited Data Use
	// (data_processing_options ["LDU"] with their country and state); also settable as the
	// destination's own `ldu`. Default: off (data_processing_options is sent empty).
	LDU string `yaml:"ldu"`
}

// standardNames maps common snake_case event names to Meta's standard events, which Meta's
// optimisation understands; a custom "purchase" event would not count as a Purchase.
var standardNames = map[string]string{
	"purchase": "Purchase", "add_to_cart": "AddToCart", "add_to_wishlist": "AddToWishlist",
	"begin_checkout": "InitiateCheckout", "initiate_checkout": "InitiateCheckout",
	"add_payment_info": "AddPaymentInfo", "page_view": "PageView", "view_item": "ViewContent",
	"view_content": "ViewContent", "generate_lead": "Lead", "lead": "Lead", "search": "Search",
	"sign_up": "CompleteRegistration", "complete_registration": "CompleteRegistration",
	"subscribe": "Subscribe", "start_trial": "StartTrial", "contact": "Contact",
}

// hashedKeys are the user_data keys Meta takes only SHA-256 hashed, by the field path that
// feeds them. The policy must hash these paths (checked by New).
var hashedKeys = []struct{ path, key string }{
	{"properties.email", "em"}, {"properties.phone", "ph"},
	{"properties.first_name", "fn"}, {"properties.last_name", "ln"},
	{"properties.gender", "ge"}, {"properties.date_of_birth", "db"},
	{"properties.city", "ct"}, {"properties.state", "st"},
	{"properties.zip", "zp"}, {"properties.country", "country"},
}

type adapter struct {
	ldu      bool   // ldu: auto
	url      string // full URL including the access token: never log it
	testCode string
	names    sdk.EventNames
	timeout  time.Duration
	now      func() time.Time
}

// New builds the Meta adapter from its policy entry. Besides its own config it checks that the
// policy hashes every identifier Meta takes hashed and sends context.user_agent, without which
// Meta refuses every website event.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	base, token, err := sdk.DecodeAPI(dest, env, &c, sdk.API{DefaultEndpoint: DefaultEndpoint,
		Required: []string{"pixel_id"}, SecretEnv: "access_token_env"})
	if err != nil {
		return nil, err
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	paths := make([]string, len(hashedKeys))
	for i, h := range hashedKeys {
		paths[i] = h.path
	}
	if err := sdk.RequireHashed(dest, "meta_capi", paths...); err != nil {
		return nil, err
	}
	if !slices.Contains(dest.Fields, "context.user_agent") {
		return nil, &policy.FieldError{Field: "destinations." + dest.Name + ".fields",
			Reason: "must include context.user_agent (Meta refuses website events without client_user_agent)"}
	}
	ldu, err := sdk.LDUAuto(dest, c.LDU)
	if err != nil {
		return nil, err
	}
	return &adapter{
		url: base + "/" + url.PathEscape(c.APIVersion) + "/" + url.PathEscape(c.PixelID) +
			"/events?access_token=" + url.QueryEscape(token),
		testCode: c.TestEventCode,
		ldu:      ldu,
		names:    sdk.NewEventNames(standardNames, c.EventNames),
		timeout:  c.TimeoutOr(DefaultTimeout),
		now:      time.Now,
	}, nil
}

func (a *adapter) MaxBatch() int { return MaxBatch }

// Timeout is Meta's recommended client timeout unless the config sets one.
func (a *adapter) Timeout() time.Duration { return a.timeout }

// Validate refuses what Meta would refuse for the whole batch: events older than 7 days and
// website events without a user agent.
func (a *adapter) Validate(ev *schemas.FilteredEvent, now time.Time) error {
	if err := sdk.CheckAge(ev, now, MaxAge, "meta_capi"); err != nil {
		return err
	}
	if ev.Event == "" {
		return fmt.Errorf("event has no name")
	}
	if _, ok := sdk.FieldString(ev, "context.user_agent"); !ok {
		return fmt.Errorf("event has no context.user_agent (Meta requires client_user_agent for website events)")
	}
	return nil
}

type body struct {
	Data          []event `json:"data"`
	TestEventCode string  `json:"test_event_code,omitempty"`
}

type event struct {
	EventName      string     `json:"event_name"`
	EventTime      int64      `json:"event_time"` // Unix seconds
	EventID        string     `json:"event_id"`   // Meta's dedup key, shared with the browser pixel
	ActionSource   string     `json:"action_source"`
	EventSourceURL string     `json:"event_source_url,omitempty"`
	UserData       userData   `json:"user_data"`
	CustomData     *sdk.Order `json:"custom_data,omitempty"` // value, currency, order_id
	// Always sent: ["LDU"] or empty, so that Meta never applies an option set elsewhere.
	DataProcessingOptions []string `json:"data_processing_options"`
	DPOCountry            *int     `json:"data_processing_options_country,omitempty"`
	DPOState              *int     `json:"data_processing_options_state,omitempty"`
}

type userData struct {
	Em              []string `json:"em,omitempty"`
	Ph              []string `json:"ph,omitempty"`
	Fn              []string `json:"fn,omitempty"`
	Ln              []string `json:"ln,omitempty"`
	Ge              []string `json:"ge,omitempty"`
	Db              []string `json:"db,omitempty"`
	Ct              []string `json:"ct,omitempty"`
	St              []string `json:"st,omitempty"`
	Zp              []string `json:"zp,omitempty"`
	Country         []string `json:"country,omitempty"`
	ExternalID      []string `json:"external_id,omitempty"`
	ClientIPAddress string   `json:"client_ip_address,omitempty"` // never hashed
	ClientUserAgent string   `json:"client_user_agent,omitempty"` // never hashed
	Fbc             string   `json:"fbc,omitempty"`               // never hashed
	Fbp             string   `json:"fbp,omitempty"`               // never hashed
}

func (u *userData) slot(key string) *[]string {
	switch key {
	case "em":
		return &u.Em
	case "ph":
		return &u.Ph
	case "fn":
		return &u.Fn
	case "ln":
		return &u.Ln
	case "ge":
		return &u.Ge
	case "db":
		return &u.Db
	case "ct":
		return &u.Ct
	case "st":
		return &u.St
	case "zp":
		return &u.Zp
	}
	return &u.Country
}

// NewRequest builds one Conversions API request for the batch.
func (a *adapter) NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error) {
	b := body{Data: make([]event, len(batch)), TestEventCode: a.testCode}
	for i, ev := range batch {
		a.fill(&b.Data[i], ev)
	}
	return sdk.PostJSON(ctx, "meta", a.url, &b)
}

func (a *adapter) fill(e *event, ev *schemas.FilteredEvent) {
	e.EventName = a.names.Of(ev.Event)
	e.EventTime = ev.TimestampMs / 1000
	e.EventID = ev.EventID
	e.ActionSource = "website"
	e.DataProcessingOptions = []string{}
	if a.ldu && sdk.VendorConsent(ev, schemas.VendorLimitedDataUse) {
		country, state := lduLocation(ev.Jurisdiction)
		e.DataProcessingOptions, e.DPOCountry, e.DPOState = []string{"LDU"}, &country, &state
	}
	e.EventSourceURL, _ = sdk.FieldString(ev, "context.page_url")
	u := &e.UserData
	for _, h := range hashedKeys {
		if v, ok := sdk.HashedField(ev, h.path); ok {
			*u.slot(h.key) = []string{v}
		}
	}
	for _, p := range []string{"user_id", "anonymous_id"} { // only when the policy lists them
		if v, ok := sdk.FieldString(ev, p); ok {
			u.ExternalID = append(u.ExternalID, v)
		}
	}
	u.ClientIPAddress, _ = sdk.FieldString(ev, "context.ip")
	u.ClientUserAgent, _ = sdk.FieldString(ev, "context.user_agent")
	u.Fbp, _ = sdk.FieldString(ev, "properties.fbp")
	if fbc, ok := sdk.FieldString(ev, "properties.fbc"); ok {
		u.Fbc = fbc
	} else if clid, ok := sdk.FieldString(ev, "properties.fbclid"); ok {
		// fbclid is case-sensitive: used exactly as received, never lower-cased.
		u.Fbc = "fb.1." + strconv.FormatInt(ev.TimestampMs, 10) + "." + clid
	}
	e.CustomData = sdk.OrderOf(ev)
}

// graphError is the error object of a Graph API answer.
type graphError struct {
	Error *struct {
		Code        int   `json:"code"`
		Subcode     int   `json:"error_subcode"`
		IsTransient *bool `json:"is_transient"`
	} `json:"error"`
}

// Classify reads a Graph API answer. The Graph error code decides when the body has one,
// because Meta answers most errors with HTTP 400 whatever their nature:
//   - 1, 2 (temporary) and 4, 17, 341 (throttling): Retry;
//   - 190 (access token), 10 and 200–299 (permissions): Permanent — no resend fixes them;
//   - any other code: Retry when the body says is_transient, else the HTTP status decides
//     (429/5xx Retry, other 4xx Permanent).
//
// A Permanent answer to a 400 keeps Split (set by sdk.ClassifyStatus): Meta rejects a whole
// request for one bad event without saying which, so the runner halves the batch until only the
// bad events are refused.
func (a *adapter) Classify(status int, header http.Header, respBody []byte, _ []*schemas.FilteredEvent) sdk.Verdict {
	v := sdk.ClassifyStatus(status, header, a.now())
	if v.Class == sdk.Delivered {
		return v
	}
	var ge graphError
	if json.Unmarshal(respBody, &ge) != nil || ge.Error == nil || ge.Error.Code == 0 {
		return v
	}
	code := ge.Error.Code
	v.Reason = "graph_error_" + strconv.Itoa(code)
	switch {
	case code == 1 || code == 2 || code == 4 || code == 17 || code == 341:
		v.Class, v.Split = sdk.Retry, false
	case code == 190 || code == 10 || (code >= 200 && code <= 299):
		// Token or permission: no event of the batch can pass, so splitting it would only
		// multiply refused requests.
		v.Class, v.RetryAfter, v.Split = sdk.Permanent, 0, false
	case ge.Error.IsTransient != nil && *ge.Error.IsTransient:
		v.Class, v.Split = sdk.Retry, false
	}
	return v
}

// lduStates are Meta's codes for data_processing_options_state. Meta documents only
// California's; for any other state the code is 0, which asks Meta to geolocate the event
// (docs/vendors.md "Consent fields").
var lduStates = map[string]int{"CA": 1000}

// lduLocation is Meta's country (1: the US) and state code for a `US-<state>` jurisdiction.
func lduLocation(jurisdiction string) (country, state int) {
	code, _ := policy.USState(jurisdiction)
	return 1, lduStates[code]
}
