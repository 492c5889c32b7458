// Package tiktok delivers events to the TikTok Events API 2.0:
// POST {endpoint}/open_api/v1.3/event/track/ with header Access-Token.
//
// TikTok reports errors in the body's "code" even with HTTP 200, so Classify reads the body
// before trusting the status. Email, phone and external ids are taken only as the SHA-256 digests
// the consent processor wrote (E.164 phone with "+" for TikTok); the adapter never hashes.
package tiktok

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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
	names          sdk.EventNames
	timeout        time.Duration
	now            func() time.Time
}

// New builds the TikTok adapter from its policy entry.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	base, token, err := sdk.DecodeAPI(dest, env, &c, sdk.API{DefaultEndpoint: DefaultEndpoint,
		Required: []string{"pixel_code"}, SecretEnv: "access_token_env"})
	if err != nil {
		return nil, err
	}
	if err := sdk.RequireHashed(dest, "tiktok", hashedPaths...); err != nil {
		return nil, err
	}
	if _, err := sdk.LDUAuto(dest, c.LDU); err != nil {
		return nil, err
	}
	return &adapter{
		url: base + Path, token: token, pixel: c.PixelCode, testCode: c.TestEventCode,
		limitedDataUse: c.LimitedDataUse, lduPerEvent: dest.LDU != policy.LDUOff && c.LDU != policy.LDUOff,
		names:   sdk.NewEventNames(standardNames, c.EventNames),
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
	Event          string     `json:"event"`
	EventTime      int64      `json:"event_time"` // Unix seconds
	EventID        string     `json:"event_id"`   // TikTok's dedup key with the browser pixel
	User           user       `json:"user"`
	Properties     *sdk.Order `json:"properties,omitempty"` // value, currency, order_id
	Page           *page      `json:"page,omitempty"`
	LimitedDataUse bool       `json:"limited_data_use"` // always sent: the decision's answer, also when false
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
	req, err := sdk.PostJSON(ctx, "tiktok", a.url, &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Access-Token", a.token)
	return req, nil
}

func (a *adapter) fill(e *event, ev *schemas.FilteredEvent) {
	e.Event = a.names.Of(ev.Event)
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
	e.Properties = sdk.OrderOf(ev)
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
