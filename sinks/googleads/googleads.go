// Package googleads delivers conversions to Google Ads through the Data Manager API:
// POST {endpoint}/v1/events:ingest with an OAuth bearer token.
//
// The Data Manager form is used rather than the Google Ads API's click-conversion upload: one
// JSON request, no developer token, and request-level validation (a bad row fails the request
// with a 400 naming the row, instead of a partial failure hidden in a 200). Email and phone go as
// hashed user identifiers, taken only as the SHA-256 digests the consent processor wrote (Google
// normalisation: Gmail dots and +suffix removed, E.164 phone with "+"); the adapter never hashes.
package googleads

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// Defaults and limits.
const (
	DefaultEndpoint = "https://datamanager.googleapis.com"
	DefaultTimeout  = 10 * time.Second
	// Path is the Data Manager ingest method, kept whatever the configured base.
	Path = "/v1/events:ingest"
	// MaxBatch is the Data Manager limit of events per request.
	MaxBatch = 2000
	// TooRecentDelay is Google's minimum wait after TOO_RECENT_EVENT / TOO_RECENT_CONVERSION_ACTION.
	TooRecentDelay = 6 * time.Hour
)

// config is the destination's `config` block.
type config struct {
	sdk.HTTPConfig `yaml:",inline"`
	// Endpoint replaces the Data Manager base URL (default https://datamanager.googleapis.com).
	Endpoint string `yaml:"endpoint"`
	// AccessTokenEnv names the environment variable holding the OAuth access token (scope
	// https://www.googleapis.com/auth/datamanager). Required. The token is read once at start:
	// refreshing it means restarting the sink.
	AccessTokenEnv string `yaml:"access_token_env"`
	// CustomerID is the Google Ads account that owns the conversion action (dashes allowed).
	// Required.
	CustomerID string `yaml:"customer_id"`
	// LoginCustomerID is the manager account the credentials belong to, when not CustomerID.
	LoginCustomerID string `yaml:"login_customer_id"`
	// ConversionActionID is the conversion action the events count for. Required.
	ConversionActionID string `yaml:"conversion_action_id"`
	// ValidateOnly makes Google validate without ingesting (testing). Default false.
	ValidateOnly bool `yaml:"validate_only"`
}

type adapter struct {
	url, auth    string
	destinations []destination
	validateOnly bool
	timeout      time.Duration
	now          func() time.Time
}

type account struct {
	AccountType string `json:"accountType"`
	AccountID   string `json:"accountId"`
}

type destination struct {
	OperatingAccount     account  `json:"operatingAccount"`
	LoginAccount         *account `json:"loginAccount,omitempty"`
	ProductDestinationID string   `json:"productDestinationId"`
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// New builds the Google Ads adapter from its policy entry.
func New(dest *policy.Destination, env sdk.Env) (sdk.Adapter, error) {
	var c config
	// No SecretEnv: the ids (numeric, dashes allowed) are checked before the token is read.
	base, _, err := sdk.DecodeAPI(dest, env, &c, sdk.API{DefaultEndpoint: DefaultEndpoint})
	if err != nil {
		return nil, err
	}
	d := destination{ProductDestinationID: c.ConversionActionID}
	for _, f := range []struct {
		key string
		val *string
	}{{"customer_id", &c.CustomerID}, {"conversion_action_id", &d.ProductDestinationID}, {"login_customer_id", &c.LoginCustomerID}} {
		*f.val = strings.ReplaceAll(strings.TrimSpace(*f.val), "-", "")
		if *f.val == "" && f.key != "login_customer_id" {
			return nil, sdk.ConfigError(dest, f.key, "is required")
		}
		if *f.val != "" && !digits.MatchString(*f.val) {
			return nil, sdk.ConfigError(dest, f.key, "must be a numeric id")
		}
	}
	d.OperatingAccount = account{AccountType: "GOOGLE_ADS", AccountID: c.CustomerID}
	if c.LoginCustomerID != "" && c.LoginCustomerID != c.CustomerID {
		d.LoginAccount = &account{AccountType: "GOOGLE_ADS", AccountID: c.LoginCustomerID}
	}
	token, err := sdk.Secret(dest, env, "access_token_env", c.AccessTokenEnv)
	if err != nil {
		return nil, err
	}
	if err := sdk.RequireHashed(dest, "google_ads", "properties.email", "properties.phone"); err != nil {
		return nil, err
	}
	return &adapter{
		url: base + Path, auth: "Bearer " + token, destinations: []destination{d},
		validateOnly: c.ValidateOnly, timeout: c.TimeoutOr(DefaultTimeout), now: time.Now,
	}, nil
}

func (a *adapter) MaxBatch() int { return MaxBatch }

// Timeout is 10 s unless the config sets one.
func (a *adapter) Timeout() time.Duration { return a.timeout }

// Validate refuses events Google cannot attribute: without a hashed email or phone and without a
// click id (gclid, gbraid, wbraid), an event matches no ad interaction and only fails its batch.
func (a *adapter) Validate(ev *schemas.FilteredEvent, _ time.Time) error {
	for _, p := range []string{"properties.email", "properties.phone"} {
		if _, ok := sdk.HashedField(ev, p); ok {
			return nil
		}
	}
	for _, p := range []string{"properties.gclid", "properties.gbraid", "properties.wbraid"} {
		if _, ok := sdk.FieldString(ev, p); ok {
			return nil
		}
	}
	return fmt.Errorf("event has neither a hashed email or phone nor a click id (gclid, gbraid, wbraid)")
}

type body struct {
	Destinations []destination `json:"destinations"`
	Encoding     string        `json:"encoding"`
	Events       []event       `json:"events"`
	ValidateOnly bool          `json:"validateOnly,omitempty"`
}

type event struct {
	TransactionID   string         `json:"transactionId"` // Google's dedup key
	EventTimestamp  string         `json:"eventTimestamp"`
	EventSource     string         `json:"eventSource"`
	UserData        *userData      `json:"userData,omitempty"`
	AdIdentifiers   *adIdentifiers `json:"adIdentifiers,omitempty"`
	Consent         consent        `json:"consent"`
	ConversionValue *float64       `json:"conversionValue,omitempty"`
	Currency        string         `json:"currency,omitempty"`
	EventDeviceInfo *deviceInfo    `json:"eventDeviceInfo,omitempty"`
}

type userData struct {
	UserIdentifiers []userIdentifier `json:"userIdentifiers"`
}

type userIdentifier struct {
	EmailAddress string `json:"emailAddress,omitempty"`
	PhoneNumber  string `json:"phoneNumber,omitempty"`
}

type adIdentifiers struct {
	Gclid  string `json:"gclid,omitempty"`
	Gbraid string `json:"gbraid,omitempty"`
	Wbraid string `json:"wbraid,omitempty"`
}

type consent struct {
	AdUserData        string `json:"adUserData"`
	AdPersonalization string `json:"adPersonalization"`
}

type deviceInfo struct {
	UserAgent string `json:"userAgent,omitempty"`
	IPAddress string `json:"ipAddress,omitempty"`
}

// NewRequest builds one events:ingest request for the batch.
func (a *adapter) NewRequest(ctx context.Context, batch []*schemas.FilteredEvent) (*http.Request, error) {
	b := body{Destinations: a.destinations, Encoding: "HEX", Events: make([]event, len(batch)), ValidateOnly: a.validateOnly}
	for i, ev := range batch {
		fill(&b.Events[i], ev)
	}
	req, err := sdk.PostJSON(ctx, "google ads", a.url, &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", a.auth)
	return req, nil
}

func fill(e *event, ev *schemas.FilteredEvent) {
	// The order id is the conversion's identity for Google; the event id stands in when the site
	// sends none, so a resend of the same event is still recognised.
	e.TransactionID = ev.EventID
	if id, ok := sdk.FieldString(ev, "properties.order_id"); ok {
		e.TransactionID = id
	}
	e.EventTimestamp = sdk.EventTime(ev).UTC().Format(time.RFC3339Nano)
	e.EventSource = "WEB"
	var ids []userIdentifier
	if v, ok := sdk.HashedField(ev, "properties.email"); ok {
		ids = append(ids, userIdentifier{EmailAddress: v})
	}
	if v, ok := sdk.HashedField(ev, "properties.phone"); ok {
		ids = append(ids, userIdentifier{PhoneNumber: v})
	}
	if len(ids) > 0 {
		e.UserData = &userData{UserIdentifiers: ids}
	}
	var ad adIdentifiers
	ad.Gclid, _ = sdk.FieldString(ev, "properties.gclid")
	ad.Gbraid, _ = sdk.FieldString(ev, "properties.gbraid")
	ad.Wbraid, _ = sdk.FieldString(ev, "properties.wbraid")
	if ad != (adIdentifiers{}) {
		e.AdIdentifiers = &ad
	}
	e.Consent = consent{AdUserData: grant(sdk.VendorConsent(ev, schemas.VendorAdUserData)),
		AdPersonalization: grant(sdk.VendorConsent(ev, schemas.VendorAdPersonalization))}
	if o := sdk.OrderOf(ev); o != nil {
		e.ConversionValue, e.Currency = o.Value, o.Currency
	}
	var di deviceInfo
	di.UserAgent, _ = sdk.FieldString(ev, "context.user_agent")
	di.IPAddress, _ = sdk.FieldString(ev, "context.ip")
	if di != (deviceInfo{}) {
		e.EventDeviceInfo = &di
	}
}

// googleError is Google's error envelope (google.rpc.Status) with the detail types we read.
type googleError struct {
	Error *struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			Reason          string `json:"reason"`     // ErrorInfo
			RetryDelay      string `json:"retryDelay"` // RetryInfo, e.g. "30s"
			FieldViolations []struct {
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"fieldViolations"` // BadRequest
		} `json:"details"`
	} `json:"error"`
}

var eventIndex = regexp.MustCompile(`^events\[(\d+)\]`)

// Classify reads a Data Manager answer:
//   - 2xx: Delivered (ingestion then runs asynchronously at Google).
//   - 429 RESOURCE_EXHAUSTED, 500 UNKNOWN/INTERNAL, 503, 504 DEADLINE_EXCEEDED: Retry after the
//     RetryInfo delay (or Retry-After), whichever is longer.
//   - TOO_RECENT_EVENT / TOO_RECENT_CONVERSION_ACTION anywhere in the error: Retry after ≥ 6 h.
//   - 400 INVALID_ARGUMENT whose field violations all name events ("events[3]…"): those rows go in
//     Failed. Google refused the whole request, so the other rows were not ingested either: they
//     get Retry, to be resent without the bad rows. Duplicate reasons (…ALREADY_EXISTS) mean
//     Google has the row: not a failure. When every row failed, or a violation names no row
//     (a destination, the encoding), the batch is Permanent.
//   - any other status: as sdk.ClassifyStatus says (401, 403, 404 Permanent).
//
// Reason is the lower-case RPC status ("invalid_argument"), or "http_<status>" without one.
func (a *adapter) Classify(status int, header http.Header, respBody []byte, batch []*schemas.FilteredEvent) sdk.Verdict {
	now := a.now()
	v := sdk.ClassifyStatus(status, header, now)
	if v.Class == sdk.Delivered {
		return v
	}
	var ge googleError
	if json.Unmarshal(respBody, &ge) != nil || ge.Error == nil {
		return v
	}
	if ge.Error.Status != "" {
		v.Reason = strings.ToLower(ge.Error.Status)
	}
	failed := map[int]string{}
	rowsOnly, tooRecent := true, false
	for _, d := range ge.Error.Details {
		tooRecent = tooRecent || strings.Contains(d.Reason, "TOO_RECENT")
		if delay, err := time.ParseDuration(d.RetryDelay); err == nil && delay > v.RetryAfter {
			v.RetryAfter = min(delay, sdk.MaxRetryAfter)
		}
		for _, fv := range d.FieldViolations {
			tooRecent = tooRecent || strings.Contains(fv.Reason, "TOO_RECENT")
			if strings.HasSuffix(fv.Reason, "ALREADY_EXISTS") {
				continue // a duplicate: Google has this row
			}
			m := eventIndex.FindStringSubmatch(fv.Field)
			i, err := 0, error(nil)
			if m != nil {
				i, err = strconv.Atoi(m[1])
			}
			if m == nil || err != nil || i >= len(batch) {
				rowsOnly = false
				continue
			}
			failed[i] = "invalid_row"
			if fv.Reason != "" {
				failed[i] = strings.ToLower(fv.Reason)
			}
		}
	}
	switch {
	case tooRecent:
		return sdk.Verdict{Class: sdk.Retry, Reason: "too_recent", RetryAfter: max(v.RetryAfter, TooRecentDelay)}
	case v.Class == sdk.Retry || status != http.StatusBadRequest:
		return v
	case !rowsOnly:
		v.Split = false // a violation outside the rows (destination, encoding) concerns every row
		return v
	case len(failed) == 0:
		// Every violation was a duplicate: Google already has the rows.
		return sdk.Verdict{Class: sdk.Delivered}
	case len(failed) == len(batch):
		v.Failed, v.Split = failed, false
		return v
	}
	return sdk.Verdict{Class: sdk.Retry, Reason: "batch_rejected_for_invalid_rows", Failed: failed, ResendRest: true}
}

// grant is Google Ads' (Data Manager's) consent value.
func grant(ok bool) string {
	if ok {
		return "CONSENT_GRANTED"
	}
	return "CONSENT_DENIED"
}
