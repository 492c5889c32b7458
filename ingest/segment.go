package ingest

// The Segment-compatible tracking API (POST /v1/batch, /v1/track, /v1/page, /v1/identify), so
// Segment and RudderStack SDKs can point at tollgate unchanged. Messages are mapped onto
// tollgate's event (docs/api.md); of Segment's context only the fields a destination may list
// (internal/policy.ContextFields) are kept: data minimisation.

import (
	"cmp"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Segment message types tollgate accepts. group and alias carry no event a destination could
// receive; they are rejected alone, by index.
const (
	segTrack    = "track"
	segPage     = "page"
	segScreen   = "screen"
	segIdentify = "identify"
)

// segContext is what ingest reads of a Segment message's context: raw JSON texts, nil if absent.
type segContext struct {
	pageURL, referrer, pageTitle []byte
	userAgent, ip, locale        []byte
	timezone, campaign, library  []byte
	categoryPreferences          []byte
	signals                      schemas.ConsentSignals // context.consent's CMP signals and consentManagement
	gpc                          []byte                 // tollgate's addition: tg.js relays navigator.globalPrivacyControl
}

// read fills c from a context object, overriding what an earlier read (the batch's shared
// context) set.
func (c *segContext) read(v []byte) error {
	if isNull(v) {
		return nil
	}
	return eachObjectMember("context", v, func(key, val []byte) error {
		switch string(key) {
		case "page":
			return c.readPage(val)
		case "userAgent":
			c.userAgent = val
		case "ip":
			c.ip = val
		case "locale":
			c.locale = val
		case "timezone":
			c.timezone = val
		case "campaign":
			c.campaign = val
		case "library":
			c.library = val
		case "consent":
			return c.readConsent(val)
		case "consentManagement":
			return consentManagement(&c.signals, val)
		case "gpc":
			c.gpc = val
		}
		return nil
	})
}

func (c *segContext) readPage(v []byte) error {
	if isNull(v) {
		return nil
	}
	return eachObjectMember("context.page", v, func(key, val []byte) error {
		switch string(key) {
		case "url":
			c.pageURL = val
		case "referrer":
			c.referrer = val
		case "title":
			c.pageTitle = val
		}
		return nil
	})
}

func (c *segContext) readConsent(v []byte) error {
	if isNull(v) {
		return nil
	}
	return eachObjectMember("context.consent", v, func(key, val []byte) error {
		if string(key) == "categoryPreferences" {
			c.categoryPreferences = val
			return nil
		}
		_, err := readSignals(&c.signals, "context.consent", key, val)
		return err
	})
}

// segment decodes a Segment body. typ is the endpoint's message type, or "" for /v1/batch,
// whose body is {"batch": [...], "context": {...}, "sentAt": ...} with a type per message.
func (d *decoder) segment(b []byte, typ string) (*decoded, *requestError) {
	items, top, rerr := splitBody(b, typ == "")
	if rerr != nil {
		return nil, rerr
	}
	out := &decoded{items: len(items), events: make([]*schemas.Event, 0, len(items))}
	if wk, err := stringField(top.writeKey, "writeKey", maxID); err == nil {
		out.writeKey = wk
	}
	var shared segContext
	if typ == "" {
		if err := shared.read(top.context); err != nil {
			if !validText(b) { // the events are not read yet: malformed text elsewhere comes first
				return nil, malformed("%s", bodyMessage(b))
			}
			return nil, malformed("batch %s", err)
		}
	}
	for i, item := range items {
		ev, err := d.segmentMessage(item, typ, &shared, top.sentAt)
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

// segmentMessage maps one Segment message onto an event.
func (d *decoder) segmentMessage(b []byte, typ string, shared *segContext, batchSentAt []byte) (*schemas.Event, error) {
	ev := d.newEvent()
	sctx := *shared // the message's own context wins over the batch's, member by member
	var (
		msgType, name, category, props, traits []byte
		ts, original, sentAt                   time.Time
	)
	sentAtRaw := batchSentAt
	err := eachMemberChecked(b, func(key, v []byte) error {
		var err error
		switch string(key) {
		case "type":
			msgType = v
		case "messageId":
			ev.EventID, err = idField(v, "messageId", maxID)
		case "userId":
			ev.UserID, err = idField(v, "userId", maxID)
		case "anonymousId":
			ev.AnonymousID, err = idField(v, "anonymousId", maxID)
		case "event":
			ev.Event, err = idField(v, "event", maxEventName)
		case "name":
			name = v
		case "category":
			category = v
		case "timestamp":
			ts, err = timeField(v, "timestamp")
		case "originalTimestamp":
			original, err = timeField(v, "originalTimestamp")
		case "sentAt":
			sentAtRaw = v
		case "properties":
			props = v
		case "traits":
			traits = v
		case "context":
			err = sctx.read(v)
		}
		return err
	})
	if errors.Is(err, errNotObject) {
		return nil, errors.New("must be a JSON object")
	}
	if err != nil {
		return nil, err
	}
	if typ == "" {
		if typ, err = stringField(msgType, "type", maxShort); err != nil {
			return nil, err
		}
	}
	switch typ {
	case segTrack:
		if ev.Event == "" {
			return nil, fieldErr("event", "is required for a track call")
		}
		ev.Properties, err = valueMap(props, "properties")
	case segPage, segScreen:
		ev.Event = typ
		if ev.Properties, err = valueMap(props, "properties"); err == nil {
			ev.Properties = withName(ev.Properties, name, category)
		}
	case segIdentify:
		ev.Event = typ
		ev.Properties, err = valueMap(traits, "traits")
	case "":
		return nil, fieldErr("type", "is required")
	default:
		return nil, fieldErr("type", "%q is not supported (track, page, screen, identify)", typ)
	}
	if err != nil {
		return nil, err
	}
	if typ == segPage { // analytics.js puts the page in properties too; use it when context lacks it
		sctx.pageURL = firstSet(sctx.pageURL, []byte(ev.Properties["url"]))
		sctx.referrer = firstSet(sctx.referrer, []byte(ev.Properties["referrer"]))
		sctx.pageTitle = firstSet(sctx.pageTitle, []byte(ev.Properties["title"]))
	}
	if ev.Context, err = sctx.fields(); err != nil {
		return nil, err
	}
	if ev.Consent, err = d.segmentConsent(sctx.categoryPreferences); err != nil {
		return nil, err
	}
	if ev.GPC, err = segmentGPC(ev.GPC, sctx.gpc); err != nil {
		return nil, err
	}
	sig := sctx.signals // a copy: the batch's shared context may hold lists too
	sig.GPPSID = append([]int(nil), sig.GPPSID...)
	sig.CMPAllowed = append([]string(nil), sig.CMPAllowed...)
	sig.CMPDenied = append([]string(nil), sig.CMPDenied...)
	if ev.Signals, err = finishSignals(&sig, "context.consent"); err != nil {
		return nil, err
	}
	if ts.IsZero() && !original.IsZero() {
		ts = original
		// Segment's clock-skew correction: the SDK's clock may be off, but the time between
		// the call and the send is not.
		if sentAt, err = timeField(sentAtRaw, "sentAt"); err == nil && !sentAt.IsZero() {
			ts = d.received.Add(-sentAt.Sub(original))
		}
	}
	return d.finish(ev, ts, errNoSegmentUser)
}

// withName adds a page or screen call's name and category to its properties, as Segment does,
// unless the properties carry their own.
func withName(props map[string]string, name, category []byte) map[string]string {
	for key, v := range map[string][]byte{"name": name, "category": category} {
		if isNull(v) {
			continue
		}
		if _, ok := props[key]; ok {
			continue
		}
		if props == nil {
			props = map[string]string{}
		}
		props[key] = compactText(v)
	}
	return props
}

func firstSet(a, b []byte) []byte {
	if !isNull(a) {
		return a
	}
	if len(b) == 0 {
		return nil
	}
	return b
}

// fields returns the kept context fields as tollgate context members, dropping nulls.
func (c *segContext) fields() (map[string]string, error) {
	m := map[string]string{}
	for _, f := range []struct {
		name string
		val  []byte
	}{
		{"page_url", c.pageURL}, {"referrer", c.referrer}, {"page_title", c.pageTitle},
		{"user_agent", c.userAgent}, {"ip", c.ip}, {"locale", c.locale},
		{"timezone", c.timezone}, {"campaign", c.campaign}, {"library", c.library},
	} {
		if isNull(f.val) {
			continue
		}
		if tooDeep(f.val) {
			return nil, fieldErr("context."+f.name, "nests deeper than %d levels", MaxValueDepth)
		}
		m[f.name] = compactText(f.val)
	}
	return m, nil
}

// segmentConsent maps context.consent.categoryPreferences ({Category: bool}) to purposes through
// the policy's segment_categories. Several categories may map to one purpose: it is granted only
// if every one of them that is present is true. Categories the policy does not map are ignored.
// No preferences, or none the policy maps, is nil: the user made no choice tollgate understands.
func (d *decoder) segmentConsent(prefs []byte) (map[string]bool, error) {
	if isNull(prefs) {
		return nil, nil
	}
	const field = "context.consent.categoryPreferences"
	var m map[string]bool
	err := eachMember(prefs, func(category, v []byte) error {
		purpose, ok := d.categories[string(category)]
		if !ok {
			return nil
		}
		var granted bool
		switch string(v) {
		case "true":
			granted = true
		case "false":
		default:
			return fieldErr(field+"."+string(category), "must be true or false")
		}
		if m == nil {
			m = map[string]bool{}
		}
		if prev, seen := m[purpose]; seen {
			granted = granted && prev
		}
		m[purpose] = granted
		return nil
	})
	if errors.Is(err, errNotObject) {
		return nil, fieldErr(field, "must be an object of category: true|false")
	}
	return m, err
}

// segmentGPC adds context.gpc (true, false or null) to the request's Sec-GPC signal, which the
// body cannot clear. A page script cannot send Sec-GPC itself (a forbidden header name), so tg.js
// relays navigator.globalPrivacyControl here.
func segmentGPC(header bool, v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "", "null", "false":
		return header, nil
	}
	return header, fieldErr("context.gpc", "must be true or false")
}

// segmentReply is Segment's response shape; rejected is tollgate's addition, omitted when empty.
type segmentReply struct {
	Success  bool        `json:"success"`
	Error    string      `json:"error,omitempty"`
	Rejected []rejection `json:"rejected,omitempty"`
}

// segmentHandler serves one Segment endpoint; typ is the message type ("" for /v1/batch).
// Auth is HTTP basic with the write key as user name; with no Authorization header at all, the
// body's writeKey is used (analytics.js sends it there to avoid a CORS preflight).
func (s *Server) segmentHandler(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := basicKey(r)
		if key == "" && r.Header.Get("Authorization") != "" || key != "" && !s.keys.valid(key) {
			s.unauthorized(w, "Basic")
			return
		}
		res, ok := s.decodeRequest(w, r, func(d *decoder, b []byte) (*decoded, *requestError) { return d.segment(b, typ) })
		if !ok {
			return
		}
		if key == "" && !s.keys.valid(res.writeKey) {
			s.unauthorized(w, "Basic")
			return
		}
		s.metrics.decoded(res)
		if len(res.events) == 0 {
			writeJSON(w, http.StatusBadRequest, segmentReply{Error: noneAccepted(res), Rejected: res.rejected})
			return
		}
		if !s.admit(w, cmp.Or(key, res.writeKey), len(res.events)) || !s.store(w, r, res) {
			return
		}
		writeJSON(w, http.StatusOK, segmentReply{Success: true, Rejected: res.rejected})
	}
}
