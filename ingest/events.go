package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Limits of the ingest API (docs/api.md).
const (
	// MaxBodyBytes is the largest request body accepted (after gzip decoding); larger gets 413.
	MaxBodyBytes = 1 << 20
	// MaxBatchEvents is the most events one request may carry; more gets 413.
	MaxBatchEvents = 500
	// MaxValueDepth is how deeply one context or property value may nest objects and arrays;
	// deeper values get their event rejected.
	MaxValueDepth = 8

	maxEventName = 200 // characters of "event"
	maxID        = 256 // characters of event_id, user_id, anonymous_id
	maxShort     = 64  // characters of jurisdiction, notice_version
)

// requestError rejects a whole request.
type requestError struct {
	status int
	reason string // metrics reason
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func malformed(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, reason: reasonMalformed, msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *requestError {
	return &requestError{status: http.StatusRequestEntityTooLarge, reason: reasonTooLarge, msg: fmt.Sprintf(format, args...)}
}

// fieldError names the field of an event that is wrong.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return "field " + strconv.Quote(e.field) + " " + e.msg }

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// rejection is one event rejected alone, by its index in the request.
type rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

func reject(i int, err error) rejection {
	return rejection{Index: i, Error: "event " + strconv.Itoa(i) + ": " + err.Error()}
}

// decoded is the outcome of decoding one request body.
type decoded struct {
	events   []*schemas.Event
	rejected []rejection
	items    int    // events in the body, valid or not
	writeKey string // Segment bodies may carry the write key (analytics.js does); "" if none
}

// decoder turns request bodies into events. It holds what the request adds to each event.
type decoder struct {
	received     time.Time
	gpc          bool              // Sec-GPC: 1 was sent: every event carries a GPC signal
	jurisdiction string            // derived from trusted headers; "" leaves it to the processor
	categories   map[string]string // Segment consent category -> purpose
	// gcm holds the request's gcs/gcd URL parameters: Consent Mode states of every event.
	gcm map[string]signals.State
}

// body holds the top-level members of a request body that ingest reads.
type body struct {
	batch    []byte // the "batch" member, nil when absent
	writeKey []byte
	context  []byte // Segment: context shared by every message of a batch
	sentAt   []byte // Segment: the SDK's send time, for clock-skew correction
}

// splitBody reads a body's top level in one pass and returns its events' JSON texts: the
// elements of "batch" when batch is set (or required), else the body itself. It does not check
// the events' own text: each event's decoder reads it once, strictly (eachMemberChecked), and a
// decoder's errMalformed makes the whole body malformed (bodyErr). Every other error it returns
// is checked against the whole text first, so a body that is not valid UTF-8 JSON gets the same
// answer whatever else is wrong with it.
func splitBody(b []byte, requireBatch bool) ([][]byte, body, *requestError) {
	items, top, rerr := splitTop(b, requireBatch)
	if rerr != nil && rerr != errBodySyntax && !validText(b) {
		rerr = errBodySyntax
	}
	if rerr == errBodySyntax {
		return nil, top, malformed("%s", bodyMessage(b))
	}
	return items, top, rerr
}

// errBodySyntax marks a body that is not valid UTF-8 JSON; splitBody says why.
var errBodySyntax = &requestError{}

// bodyErr turns a decoder's errMalformed (the event text is not valid JSON) into the whole
// body's error.
func bodyErr(b []byte, err error) *requestError {
	if errors.Is(err, errMalformed) {
		return malformed("%s", bodyMessage(b))
	}
	return nil
}

func splitTop(b []byte, requireBatch bool) ([][]byte, body, *requestError) {
	var (
		top    body
		items  [][]byte
		others [][2][]byte // members beside "batch", checked only when there is a batch
		twice  bool        // "batch" is repeated
		isArr  bool        // the (last) "batch" is an array
	)
	end, err := walkObject(b, func(key []byte, i int) (int, error) {
		var end, depth int
		var err error
		if string(key) == "batch" && i < len(b) && b[i] == '[' {
			items, end, depth, err = splitArray(b, i) // the batch's elements found in this walk
			isArr = true
		} else {
			end, depth = skipValue(b, i)
			if string(key) == "batch" {
				isArr = false
			}
		}
		if err != nil || end < 0 || depth+1 > maxNesting {
			return -1, errMalformed
		}
		val := b[i:end]
		if string(key) == "batch" {
			twice = twice || top.batch != nil
		} else {
			others = append(others, [2][]byte{key, val})
		}
		switch string(key) {
		case "batch":
			top.batch = val
		case "writeKey":
			top.writeKey = val
		case "context":
			top.context = val
		case "sentAt":
			top.sentAt = val
		}
		return end, nil
	})
	switch {
	case errors.Is(err, errNotObject):
		return nil, top, malformed("body must be a JSON object")
	case err != nil || skipSpace(b, end) != len(b):
		return nil, top, errBodySyntax
	}
	if isNull(top.batch) {
		if requireBatch {
			return nil, top, malformed(`field "batch" is required`)
		}
		return [][]byte{b}, top, nil // the event decoder checks it (eachMemberChecked) like a batch's events
	}
	// The events are checked one by one by their decoder, so a bad one is rejected alone; the
	// rest of the body is checked here.
	if twice {
		return nil, top, malformed(`field "batch" is a repeated key`)
	}
	seen := make(map[string]bool, len(others)) // a map: a hostile body may have 100,000 members
	for _, m := range others {
		if seen[string(m[0])] {
			return nil, top, malformed("%s", fieldErr(string(m[0]), "is a repeated key"))
		}
		seen[string(m[0])] = true
		if err := checkMember(string(m[0]), m[1]); err != nil {
			if errors.Is(err, errMalformed) {
				return nil, top, errBodySyntax
			}
			return nil, top, malformed("%s", err)
		}
	}
	switch {
	case !isArr:
		return nil, top, malformed(`field "batch" must be an array`)
	case len(items) == 0:
		return nil, top, malformed(`field "batch" is empty`)
	case len(items) > MaxBatchEvents:
		return nil, top, tooLarge("batch has %d events, at most %d are accepted", len(items), MaxBatchEvents)
	}
	return items, top, nil
}

// native decodes a POST /v1/events body: one event or {"batch": [...]}.
func (d *decoder) native(b []byte) (*decoded, *requestError) {
	items, _, rerr := splitBody(b, false)
	if rerr != nil {
		return nil, rerr
	}
	out := &decoded{items: len(items), events: make([]*schemas.Event, 0, len(items))}
	for i, item := range items {
		ev, err := d.nativeEvent(item)
		if rerr := bodyErr(b, err); rerr != nil {
			return nil, rerr
		}
		if err != nil {
			out.rejected = append(out.rejected, reject(i, err))
			continue
		}
		out.events = append(out.events, ev)
	}
	return out, nil
}

// nativeEvent validates one event of docs/api.md and fills what the request adds.
func (d *decoder) nativeEvent(b []byte) (*schemas.Event, error) {
	ev := d.newEvent()
	var (
		ts   time.Time
		gpc  bool
		name bool
	)
	err := eachMemberChecked(b, func(key, v []byte) error {
		var err error
		switch string(key) {
		case "event_id":
			ev.EventID, err = idField(v, "event_id", maxID)
		case "event":
			ev.Event, err = idField(v, "event", maxEventName)
			name = !isNull(v)
		case "timestamp":
			ts, err = timeField(v, "timestamp")
		case "user_id":
			ev.UserID, err = idField(v, "user_id", maxID)
		case "anonymous_id":
			ev.AnonymousID, err = idField(v, "anonymous_id", maxID)
		case "consent":
			ev.Consent, err = consentField(v, "consent")
		case "consent_signals":
			ev.Signals, err = nativeSignals(v)
		case "jurisdiction":
			var j string
			if j, err = idField(v, "jurisdiction", maxShort); j != "" {
				ev.Jurisdiction = j // the event's own field wins over the request's headers
			}
		case "gpc": // an extension for server-side senders relaying a browser's GPC signal
			gpc, err = boolField(v, "gpc")
		case "context":
			ev.Context, err = valueMap(v, "context")
		case "properties":
			ev.Properties, err = valueMap(v, "properties")
		}
		return err
	})
	if errors.Is(err, errNotObject) {
		return nil, errors.New("must be a JSON object")
	}
	if err != nil {
		return nil, err
	}
	if ev.Event == "" {
		if name {
			return nil, fieldErr("event", "must not be empty")
		}
		return nil, fieldErr("event", "is required")
	}
	ev.GPC = ev.GPC || gpc // a request's Sec-GPC header cannot be cleared by the event
	return d.finish(ev, ts, errNoUser)
}

func (d *decoder) newEvent() *schemas.Event {
	return &schemas.Event{
		ReceivedMs:   d.received.UnixMilli(),
		GPC:          d.gpc,
		Jurisdiction: d.jurisdiction,
	}
}

var (
	errNoUser        = errors.New(`field "user_id" or "anonymous_id" is required`)
	errNoSegmentUser = errors.New(`field "userId" or "anonymousId" is required`)
)

// finish checks the identity (noUser names the fields in the caller's API), fills event id and
// time, and makes maps non-nil.
func (d *decoder) finish(ev *schemas.Event, ts time.Time, noUser error) (*schemas.Event, error) {
	if ev.UserID == "" && ev.AnonymousID == "" {
		return nil, noUser
	}
	addGCM(ev, d.gcm)
	if ev.EventID == "" {
		ev.EventID = uuid.NewString()
	}
	if ts.IsZero() {
		ev.TimestampMs = ev.ReceivedMs
	} else {
		ev.TimestampMs = ts.UnixMilli()
	}
	if ev.Context == nil {
		ev.Context = map[string]string{}
	}
	if ev.Properties == nil {
		ev.Properties = map[string]string{}
	}
	return ev, nil
}

// stringField reads an optional string of at most max characters; null or absent is "".
func stringField(v []byte, field string, max int) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if v[0] != '"' {
		return "", fieldErr(field, "must be a string")
	}
	s, err := unquote(v)
	if err != nil {
		return "", fieldErr(field, "must be a string")
	}
	if len(s) > max && utf8.RuneCountInString(s) > max {
		return "", fieldErr(field, "is longer than %d characters", max)
	}
	return s, nil
}

// idField is stringField for an id, an event name or a jurisdiction: values that name things
// in logs, topic keys and audit rows, where a control character (a newline, a NUL) would forge
// or cut a line, so one is refused.
func idField(v []byte, field string, max int) (string, error) {
	s, err := stringField(v, field, max)
	if err == nil && hasControl(s) {
		return "", fieldErr(field, "must not contain control characters (U+0000-U+001F)")
	}
	return s, err
}

// timeField reads an optional RFC 3339 time; null, absent or "" is the zero time.
func timeField(v []byte, field string) (time.Time, error) {
	s, err := stringField(v, field, maxShort)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// Some SDKs write the offset without a colon (+0000); accept that ISO 8601 form too.
		if t, err = time.Parse("2006-01-02T15:04:05.999999999Z0700", s); err != nil {
			return time.Time{}, fieldErr(field, "must be an RFC 3339 time like 2026-11-23T10:00:00Z")
		}
	}
	return t, nil
}

func boolField(v []byte, field string) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false", "null", "":
		return false, nil
	}
	return false, fieldErr(field, "must be true or false")
}

// consentField reads a purpose -> bool object. null or absent is nil: no choice made.
func consentField(v []byte, field string) (map[string]bool, error) {
	if isNull(v) {
		return nil, nil
	}
	m := map[string]bool{}
	err := eachMember(v, func(purpose, val []byte) error {
		switch string(val) {
		case "true":
			m[string(purpose)] = true
		case "false":
			m[string(purpose)] = false
		default:
			return fieldErr(field+"."+string(purpose), "must be true or false")
		}
		return nil
	})
	if errors.Is(err, errNotObject) {
		return nil, fieldErr(field, "must be an object of purpose: true|false")
	}
	return m, err
}

// tooDeep reports whether the value v nests objects and arrays deeper than MaxValueDepth; a
// scalar, most values, is not walked again.
func tooDeep(v []byte) bool {
	if len(v) == 0 || v[0] != '{' && v[0] != '[' {
		return false
	}
	_, depth := skipValue(v, 0)
	return depth > MaxValueDepth
}

// valueMap reads an object whose values are kept as compact JSON text (docs/api.md's context
// and properties). Values nesting deeper than MaxValueDepth are refused.
func valueMap(v []byte, field string) (map[string]string, error) {
	if isNull(v) {
		return nil, nil
	}
	m := map[string]string{}
	err := eachObjectMember(field, v, func(key, val []byte) error {
		if tooDeep(val) {
			return fieldErr(field+"."+string(key), "nests deeper than %d levels", MaxValueDepth)
		}
		m[string(key)] = compactText(val)
		return nil
	})
	return m, err
}
