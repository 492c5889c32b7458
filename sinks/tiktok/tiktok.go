// Package tiktok delivers events to the TikTok Events API 2.0:
// POST {endpoint}/open_api/v1.3/event/track/ with header Access-Token.
//
// TikTok reports errors in the body's "code" even with HTTP 200, so Classify reads the body
// before trusting the status. Email, phone and external ids are taken only as the SHA-256 digests
// the consent processor wrote (E.164 phone with "+" for TikTok); the adapter never hashes.
package tiktok

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Defaults and limits.
const (
	DefaultEndpoint = "https://business-api.tiktok.com"
	DefaultTimeout  = 5 * time.Second
	// MaxBatch is TikTok's limit of events per call.
	MaxBatch = 1000
	// Path is the Events API 2.0 endpoint, kept whatever the configured base.
	Path = "/open_api/v1.3/event/track/"
)

// Body codes with a documented meaning (docs/vendors.md); every other non-zero code is Permanent.
const (
	codeOK           = 0
	codeRateLimited  = 40100 // retry
	codeServerError  = 40700 // retry
	codeInvalidParam = 40002 // permanent; may be one event's fault
)

// config is the destination's `config` block.
type config struct {
	sdk.HTTPConfig `yaml:",inline"`
	// Endpoint replaces TikTok's base URL (default https://business-api.tiktok.com); path kept.
	Endpoint string `yaml:"endpoint"`
	// PixelCode is the pixel the events belong to (sent as event_source_id). Required.
	PixelCode string `yaml:"pixel_code"`
	// AccessTokenEnv names the environment variable holding the access token. Required.
	AccessTokenEnv string `yaml:"access_token_env"`
	// TestEventCode routes events to the Events Manager test tool; empty in production.
	TestEventCode string `yaml:"test_event_code"`
	// LimitedDataUse sets limited_data_use on every event, whoever the user. Default false: it
	// is set per event, for users of a US state opt-out jurisdiction, unless ldu is "off".
	LimitedDataUse bool `yaml:"limited_data_use"`
	// LDU is "auto" (the default for TikTok) or "off" (limited_data_use only from
	// LimitedDataUse); also settable as the destination's own `ldu`.
	LDU string `yaml:"ldu"`
	// EventNames maps tollgate event names to TikTok event names, on top of the built-in map of
	// standard events (purchase → CompletePayment, …); other names are sent unchanged.
	EventNames map[string]string `yaml:"event_names"`
}

var standardNames = map[string]string{
	"purchase": "CompletePayment", "add_to_cart": "AddToCart", "add_to_wishlist": "AddToWishlist",
	"begin_checkout": "InitiateCheckout", "initiate_checkout": "InitiateCheckout",
	"add_payment_info": "AddPaymentInfo", "view_item": "ViewContent", "view_content": "ViewContent",
	"search": "Search", "sign_up": "CompleteRegistration", "complete_registration": "CompleteRegistration",
	"subscribe": "Subscribe", "contact": "Contact", "generate_lead": "SubmitForm", "lead": "SubmitForm",
	"place_order": "PlaceAnOrder",
}

// hashedPaths are the fields TikTok takes only SHA-256 hashed; the policy must hash them.
var hashedPaths = []string{"properties.email", "properties.phone", "user_id", "anonymous_id"}

type adapter struct {
	url, token     string
	pixel          string
	testCode       string
	limitedDataUse bool // every event
	lduPerEvent    bool // events whose decision says limited_data_use
	names          map[string]string
	timeout        time.Duration
	now            func() time.Time
}

// New builds the TikTok adapter from its policy entry.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	if err := sdk.DecodeConfig(dest, &c); err != nil {
		return nil, err
	}
	base, err := sdk.BaseURL(dest, "endpoint", c.Endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if err := sdk.Required(dest, "pixel_code", c.PixelCode); err != nil {
		return nil, err
	}
	token, err := sdk.Secret(dest, env, "access_token_env", c.AccessTokenEnv)
	if err != nil {
		return nil, err
	}
	if err := sdk.RequireHashed(dest, "tiktok", hashedPaths...); err != nil {
		return nil, err
	}
	if _, err := sdk.LDUAuto(dest, c.LDU); err != nil {
		return nil, err
	}
	names := make(map[string]string, len(standardNames)+len(c.EventNames))
	for k, v := range standardNames {
		names[k] = v
	}
	for k, v := range c.EventNames {
		names[k] = v
	}
	return &adapter{
		url: base + Path, token: token, pixel: c.PixelCode, testCode: c.TestEventCode,
		limitedDataUse: c.LimitedDataUse, lduPerEvent: dest.LDU != policy.LDUOff && c.LDU != policy.LDUOff,
		names:   names,
		timeout: c.TimeoutOr(DefaultTimeout), now: time.Now,
	}, nil
}

func (a *adapter) MaxBatch() int { return MaxBatch }

// Timeout is 5 s unless the config sets one.
func (a *adapter) Timeout() time.Duration { return a.timeout }

// Validate refuses events without a name; TikTok documents no age limit.
func (a *adapter) Validate(ev *schemas.FilteredEvent, _ time.Time) error {
	if ev.Event == "" {
		return fmt.Errorf("event has no name")
	}
	return nil
}

type body struct {
	EventSource   string  `json:"event_source"`
	EventSourceID string  `json:"event_source_id"`
	TestEventCode string  `json:"test_event_code,omitempty"`
	Data          []event `json:"data"`
}

type event struct {
	Event          string      `json:"event"`
	EventTime      int64       `json:"event_time"` // Unix seconds
	EventID        string      `json:"event_id"`   // TikTok's dedup key with the browser pixel
	User           user        `json:"user"`
	Properties     *properties `json:"properties,omitempty"`
	Page           *page       `json:"page,omitempty"`
	LimitedDataUse bool        `json:"limited_data_use"` // always sent: the decision's answer, also when false
}

type user struct {
	Email      []string `json:"email,omitempty"`
	Phone      []string `json:"phone,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`
	Ttclid     string   `json:"ttclid,omitempty"`
	Ttp        string   `json:"ttp,omitempty"`
	IP         string   `json:"ip,omitempty"`
	UserAgent  string   `json:"user_agent,omitempty"`
}

type properties struct {
	Value    *float64 `json:"value,omitempty"`
	Currency string   `json:"currency,omitempty"`
	OrderID  string   `json:"order_id,omitempty"`
}

type page struct {
	URL      string `json:"url,omitempty"`
	Referrer string `json:"referrer,omitempty"`
}

// NewRequest builds one Events API call for the batch.
func (a *adapter) NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error) {
	b := body{EventSource: "web", EventSourceID: a.pixel, TestEventCode: a.testCode, Data: make([]event, len(batch))}
	for i, ev := range batch {
		a.fill(&b.Data[i], ev)
	}
	data, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("encode tiktok body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("tiktok request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Access-Token", a.token)
	return req, nil
}

func (a *adapter) fill(e *event, ev *schemas.FilteredEvent) {
	e.Event = ev.Event
	if n, ok := a.names[ev.Event]; ok {
		e.Event = n
	}
	e.EventTime = ev.TimestampMs / 1000
	e.EventID = ev.EventID
	e.LimitedDataUse = a.limitedDataUse || (a.lduPerEvent && sdk.VendorConsent(ev, schemas.VendorLimitedDataUse))
	u := &e.User
	if v, ok := sdk.HashedField(ev, "properties.email"); ok {
		u.Email = []string{v}
	}
	if v, ok := sdk.HashedField(ev, "properties.phone"); ok {
		u.Phone = []string{v}
	}
	for _, p := range []string{"user_id", "anonymous_id"} {
		if v, ok := sdk.HashedField(ev, p); ok {
			u.ExternalID = append(u.ExternalID, v)
		}
	}
	u.Ttclid, _ = sdk.FieldString(ev, "properties.ttclid")
	u.Ttp, _ = sdk.FieldString(ev, "properties.ttp")
	u.IP, _ = sdk.FieldString(ev, "context.ip")
	u.UserAgent, _ = sdk.FieldString(ev, "context.user_agent")
	var pr properties
	if v, ok := sdk.FieldNumber(ev, "properties.order_value"); ok {
		pr.Value = &v
	}
	if c, ok := sdk.FieldString(ev, "properties.currency"); ok {
		pr.Currency = strings.ToUpper(c)
	}
	pr.OrderID, _ = sdk.FieldString(ev, "properties.order_id")
	if pr != (properties{}) {
		e.Properties = &pr
	}
	var pg page
	pg.URL, _ = sdk.FieldString(ev, "context.page_url")
	pg.Referrer, _ = sdk.FieldString(ev, "context.referrer")
	if pg != (page{}) {
		e.Page = &pg
	}
}

// Classify reads an Events API answer. A 429 or 5xx is Retry whatever the body says (the
// gateway's answer, not the API's). Otherwise the body's code decides — TikTok sends its errors
// with HTTP 200: 0 Delivered; 40100 (rate limited) and 40700 (server error) Retry; any other
// code Permanent (40001, 40002 are documented as such; the rest are undocumented, and resending
// the same payload is unlikely to change the answer). Without a readable code, the HTTP status
// decides.
func (a *adapter) Classify(status int, header http.Header, respBody []byte, _ []*schemas.FilteredEvent) sdk.Verdict {
	v := sdk.ClassifyStatus(status, header, a.now())
	if v.Class == sdk.Retry {
		return v
	}
	var r struct {
		Code *int `json:"code"`
	}
	if json.Unmarshal(respBody, &r) != nil || r.Code == nil {
		return v
	}
	switch *r.Code {
	case codeOK:
		return v // Delivered on 2xx; a 4xx with code 0 stays what its status says
	case codeRateLimited, codeServerError:
		return sdk.Verdict{Class: sdk.Retry, Reason: "tiktok_code_" + strconv.Itoa(*r.Code),
			RetryAfter: sdk.ParseRetryAfter(header.Get("Retry-After"), a.now())}
	}
	// 40002 is an invalid parameter, which may be one event's: TikTok may fail a whole batch for
	// one bad row, so the runner splits the batch to isolate it. Other codes (auth, permission)
	// concern every event alike.
	return sdk.Verdict{Class: sdk.Permanent, Reason: "tiktok_code_" + strconv.Itoa(*r.Code), Split: *r.Code == codeInvalidParam}
}
