package standin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// vendorFunc answers one request the way a vendor's API does.
type vendorFunc func(s *Server, r *http.Request, body []byte) answer

// vendors has one stand-in per policy destination type (a test keeps them in step).
var vendors = map[string]vendorFunc{
	policy.TypeMetaCAPI:  meta,
	policy.TypeGA4:       ga4,
	policy.TypeTikTok:    tiktok,
	policy.TypeGoogleAds: googleAds,
	policy.TypeWebhook:   webhook,
}

func jsonAnswer(status int, v any) answer {
	b, _ := json.Marshal(v)
	return answer{status: status, body: b}
}

func traceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- Meta Conversions API -------------------------------------------------------------------

var metaPath = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/[^/]+/events$`)

func graphError(status, code, subcode int, transient bool, msg string) answer {
	e := map[string]any{"message": msg, "type": "OAuthException", "code": code,
		"is_transient": transient, "fbtrace_id": traceID()}
	if subcode != 0 {
		e["error_subcode"] = subcode
	}
	return jsonAnswer(status, map[string]any{"error": e})
}

func meta(s *Server, r *http.Request, body []byte) answer {
	if r.Method != http.MethodPost || !metaPath.MatchString(r.URL.Path) {
		return graphError(400, 100, 33, false, "Unsupported request - method type or path not supported")
	}
	if r.URL.Query().Get("access_token") == "" {
		return graphError(400, 190, 0, false, "Invalid OAuth access token - Cannot parse access token")
	}
	var req struct {
		Data []struct {
			EventName    string          `json:"event_name"`
			EventTime    int64           `json:"event_time"`
			EventID      string          `json:"event_id"`
			ActionSource string          `json:"action_source"`
			UserData     json.RawMessage `json:"user_data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return graphError(400, 100, 0, false, "(#100) Invalid parameter: body is not valid JSON")
	}
	switch {
	case len(req.Data) == 0:
		return graphError(400, 100, 0, false, "(#100) The parameter data is required")
	case len(req.Data) > 1000:
		return graphError(400, 100, 2804019, false, "(#100) Too many events: at most 1000 per request")
	}
	ids := make([]string, len(req.Data))
	oldest := time.Now().Add(-7 * 24 * time.Hour).Unix()
	for i, e := range req.Data {
		ids[i] = e.EventID
		var ud struct {
			UA string `json:"client_user_agent"`
		}
		_ = json.Unmarshal(e.UserData, &ud)
		switch { // one bad event fails the whole request, as at Meta
		case s.rejected(e.EventID):
			return graphError(400, 100, 2804019, false, fmt.Sprintf("(#100) Invalid parameter: event at index %d", i))
		case e.EventName == "" || e.EventTime == 0 || e.ActionSource == "" || len(e.UserData) == 0:
			return graphError(400, 100, 2804019, false, fmt.Sprintf("(#100) Missing required parameter in event at index %d", i))
		case e.EventTime < oldest:
			return graphError(400, 100, 2804003, false, fmt.Sprintf("(#100) event_time of event at index %d is more than 7 days in the past", i))
		case e.ActionSource == "website" && ud.UA == "":
			return graphError(400, 100, 2804050, false, fmt.Sprintf("(#100) client_user_agent is required for website events (index %d)", i))
		}
	}
	a := jsonAnswer(200, map[string]any{"events_received": len(req.Data), "messages": []string{}, "fbtrace_id": traceID()})
	a.accepted, a.ids = true, ids
	return a
}

// --- GA4 Measurement Protocol ---------------------------------------------------------------

var ga4Name = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)

// ga4 answers /mp/collect with 204 whatever the body, as GA4 does; /debug/mp/collect returns
// validation messages for the few rules checked here.
func ga4(s *Server, r *http.Request, body []byte) answer {
	switch {
	case r.Method != http.MethodPost:
		return answer{status: http.StatusMethodNotAllowed}
	case r.URL.Path == "/mp/collect":
		a := answer{status: http.StatusNoContent, accepted: true}
		if !s.forget { // the keys are for the records only
			a.keys = ga4Keys(body)
		}
		return a
	case r.URL.Path != "/debug/mp/collect":
		return answer{status: http.StatusNotFound}
	}
	var msgs []map[string]string
	add := func(field, desc string) {
		msgs = append(msgs, map[string]string{"fieldPath": field, "description": desc, "validationCode": "VALUE_INVALID"})
	}
	var req struct {
		ClientID string `json:"client_id"`
		Events   []struct {
			Name   string         `json:"name"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		add("", "Unable to parse Measurement Protocol JSON payload.")
	}
	if req.ClientID == "" {
		add("client_id", "client_id is required.")
	}
	if len(req.Events) == 0 || len(req.Events) > 25 {
		add("events", "A request must have between 1 and 25 events.")
	}
	for i, e := range req.Events {
		if !ga4Name.MatchString(e.Name) {
			add(fmt.Sprintf("events[%d].name", i), "Event name is invalid.")
		}
		if len(e.Params) > 25 {
			add(fmt.Sprintf("events[%d].params", i), "An event may have at most 25 params.")
		}
	}
	return jsonAnswer(200, map[string]any{"validationMessages": append([]map[string]string{}, msgs...)})
}

// ga4Keys tells a Measurement Protocol body's events apart: GA4 events carry no id, so a key is
// the client, the event's time and its name.
func ga4Keys(body []byte) []string {
	var req struct {
		ClientID string `json:"client_id"`
		Events   []struct {
			Name            string `json:"name"`
			TimestampMicros int64  `json:"timestamp_micros"`
		} `json:"events"`
	}
	if json.Unmarshal(body, &req) != nil {
		return []string{}
	}
	keys := make([]string, len(req.Events))
	for i, e := range req.Events {
		keys[i] = fmt.Sprintf("%s|%d|%s", req.ClientID, e.TimestampMicros, e.Name)
	}
	return keys
}

// --- TikTok Events API ----------------------------------------------------------------------

func tiktokCode(code int, msg string) answer {
	return jsonAnswer(200, map[string]any{"code": code, "message": msg, "request_id": traceID(), "data": map[string]any{}})
}

func tiktok(s *Server, r *http.Request, body []byte) answer {
	if r.Method != http.MethodPost || r.URL.Path != "/open_api/v1.3/event/track/" {
		return answer{status: http.StatusNotFound, body: []byte(`{"code":40400,"message":"Not found"}`)}
	}
	if r.Header.Get("Access-Token") == "" {
		return tiktokCode(40105, "Access token is incorrect or has been revoked.")
	}
	var req struct {
		EventSource   string `json:"event_source"`
		EventSourceID string `json:"event_source_id"`
		Data          []struct {
			Event     string `json:"event"`
			EventTime int64  `json:"event_time"`
			EventID   string `json:"event_id"`
		} `json:"data"`
	}
	switch err := json.Unmarshal(body, &req); {
	case err != nil:
		return tiktokCode(40002, "Invalid JSON body.")
	case req.EventSource == "" || req.EventSourceID == "":
		return tiktokCode(40002, "event_source and event_source_id are required.")
	case len(req.Data) == 0 || len(req.Data) > 1000:
		return tiktokCode(40002, "data must hold between 1 and 1000 events.")
	}
	ids := make([]string, len(req.Data))
	for i, e := range req.Data {
		ids[i] = e.EventID
		if s.rejected(e.EventID) || e.Event == "" || e.EventTime == 0 {
			return tiktokCode(40002, fmt.Sprintf("Invalid value in data[%d].", i))
		}
	}
	a := tiktokCode(0, "OK")
	a.accepted, a.ids = true, ids
	return a
}

// --- Google Ads Data Manager API ------------------------------------------------------------

var googleStatus = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
	404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

type violation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
	Reason      string `json:"reason,omitempty"`
}

func googleError(status int, msg string, details ...map[string]any) answer {
	st := googleStatus[status]
	if st == "" {
		st = "UNKNOWN"
	}
	e := map[string]any{"code": status, "message": msg, "status": st}
	if len(details) > 0 {
		e["details"] = details
	}
	return jsonAnswer(status, map[string]any{"error": e})
}

func badRequest(msg string, vs ...violation) answer {
	return googleError(400, msg, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": vs})
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func googleAds(s *Server, r *http.Request, body []byte) answer {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events:ingest" {
		return googleError(404, "Method not found.")
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return googleError(401, "Request is missing required authentication credential.")
	}
	var req struct {
		Destinations []json.RawMessage `json:"destinations"`
		Encoding     string            `json:"encoding"`
		Events       []struct {
			TransactionID  string `json:"transactionId"`
			EventTimestamp string `json:"eventTimestamp"`
			UserData       *struct {
				UserIdentifiers []map[string]any `json:"userIdentifiers"`
			} `json:"userData"`
		} `json:"events"`
	}
	switch err := json.Unmarshal(body, &req); {
	case err != nil:
		return badRequest("Invalid JSON payload received.")
	case len(req.Destinations) == 0:
		return badRequest("Request contains an invalid argument.", violation{Field: "destinations", Description: "At least one destination is required."})
	case len(req.Events) == 0 || len(req.Events) > 2000:
		return badRequest("Request contains an invalid argument.", violation{Field: "events", Description: "A request must hold between 1 and 2000 events."})
	}
	var vs []violation
	ids := make([]string, len(req.Events))
	for i, e := range req.Events {
		ids[i] = e.TransactionID
		at := fmt.Sprintf("events[%d]", i)
		if s.rejected(e.TransactionID) {
			vs = append(vs, violation{Field: at, Description: "The event is invalid.", Reason: "INVALID_EVENT"})
		}
		if _, err := time.Parse(time.RFC3339Nano, e.EventTimestamp); err != nil {
			vs = append(vs, violation{Field: at + ".event_timestamp", Description: "Required and must be RFC 3339.", Reason: "INVALID_TIMESTAMP"})
		}
		if e.UserData == nil {
			continue
		}
		for j, id := range e.UserData.UserIdentifiers {
			for _, v := range id {
				if sv, _ := v.(string); req.Encoding == "HEX" && !hexDigest.MatchString(sv) {
					vs = append(vs, violation{Field: fmt.Sprintf("%s.user_data.user_identifiers[%d]", at, j),
						Description: "Not a hex-encoded SHA-256 hash.", Reason: "INVALID_HEX_ENCODING"})
				}
			}
		}
	}
	if len(vs) > 0 {
		return badRequest("Request contains an invalid argument.", vs...)
	}
	a := jsonAnswer(200, map[string]any{"requestId": traceID()})
	a.accepted, a.ids = true, ids
	return a
}

// --- Standard Webhooks receiver -------------------------------------------------------------

func webhook(s *Server, r *http.Request, body []byte) answer {
	if r.Method != http.MethodPost {
		return answer{status: http.StatusMethodNotAllowed}
	}
	if s.secret != nil && !verify(s.secret, r.Header, body, time.Now()) {
		return answer{status: http.StatusUnauthorized, body: []byte(`{"error":"invalid signature"}`)}
	}
	var req struct {
		Events []struct {
			EventID string `json:"event_id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return answer{status: http.StatusBadRequest, body: []byte(`{"error":"invalid JSON"}`)}
	}
	ids := make([]string, len(req.Events))
	for i, e := range req.Events {
		ids[i] = e.EventID
		if s.rejected(e.EventID) {
			return answer{status: http.StatusBadRequest, body: []byte(`{"error":"event rejected"}`)}
		}
	}
	return answer{status: http.StatusNoContent, accepted: true, ids: ids}
}

// verify checks a Standard Webhooks signature: any of the space-separated "v1,<base64>"
// signatures matches, and the timestamp is within 5 minutes of now. It is written from the spec,
// apart from sinks/webhook on purpose: a stand-in that reused the sender's code would agree with
// any bug in it.
func verify(key []byte, h http.Header, body []byte, now time.Time) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		v, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && v == "v1" && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func decodeSecret(secret string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		return base64.StdEncoding.DecodeString(rest)
	}
	return []byte(secret), nil
}

// --- injected faults ------------------------------------------------------------------------

// faultAnswer is the vendor's own shape of an error with the fault's status.
func faultAnswer(kind string, f Fault) answer {
	var a answer
	switch {
	case f.Body != "":
		a = answer{status: f.Status, body: []byte(f.Body)}
	case kind == "meta_capi" && f.Status == 429:
		a = graphError(f.Status, 4, 0, true, "(#4) Application request limit reached")
	case kind == "meta_capi" && f.Status >= 500:
		a = graphError(f.Status, 2, 0, true, "An unexpected error has occurred. Please retry your request later.")
	case kind == "meta_capi" && (f.Status == 401 || f.Status == 403):
		a = graphError(f.Status, 190, 0, false, "Error validating access token: Session has expired.")
	case kind == "meta_capi":
		a = graphError(f.Status, 100, 0, false, "(#100) Invalid parameter")
	case kind == "tiktok" && f.Status == 429:
		a = answer{status: f.Status, body: []byte(`{"code":40100,"message":"Too many requests."}`)}
	case kind == "tiktok" && f.Status >= 500:
		a = answer{status: f.Status, body: []byte(`{"code":40700,"message":"Internal service error."}`)}
	case kind == "google_ads" && isSeconds(f.RetryAfter):
		a = googleError(f.Status, "Quota exceeded.", map[string]any{
			"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f.RetryAfter + "s"})
	case kind == "google_ads":
		a = googleError(f.Status, http.StatusText(f.Status))
	default: // GA4 and webhooks: a bare status, as gateways send
		a = answer{status: f.Status}
	}
	if f.RetryAfter != "" {
		a.header = http.Header{"Retry-After": {f.RetryAfter}}
	}
	return a
}

func isSeconds(v string) bool {
	_, err := strconv.Atoi(v)
	return err == nil
}
