package ingest

import (
	"cmp"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/schemas"
)

// consentReply is the answer of POST /v1/consent.
type consentReply struct {
	Accepted int    `json:"accepted"`
	UpdateID string `json:"update_id"`
}

// handleConsent records a user's current choice (docs/api.md): it travels in the raw topic
// under the user's key, so the processor applies it, in order, to every later event of the user.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	s.handleUpdate(w, r, s.decodeConsent)
}

// handleErase records a user's erasure (POST /v1/erase). Like a consent update it travels in the
// raw topic under the user's key: every event of the user processed after it is blocked (reason
// erased), and the audit writer deletes the user's audit rows when the processor records it.
func (s *Server) handleErase(w http.ResponseWriter, r *http.Request) {
	s.handleUpdate(w, r, s.decodeErase)
}

// handleUpdate authenticates, decodes and stores one consent update, answering 202 only once
// Kafka has acknowledged it.
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, decode func([]byte, time.Time) (*schemas.ConsentUpdate, error)) {
	if !s.keys.valid(bearerKey(r)) {
		s.unauthorized(w, "Bearer")
		return
	}
	received := time.Now()
	buf, rerr := readBody(w, r)
	if rerr != nil {
		s.fail(w, rerr)
		return
	}
	u, err := decode(buf.Bytes(), received)
	releaseBody(buf)
	s.metrics.received.Inc()
	metrics.Received.WithLabelValues(metrics.StageIngest).Inc()
	var re *requestError
	switch {
	case errors.As(err, &re):
		s.fail(w, re)
		return
	case err != nil:
		s.metrics.rejected(reasonInvalid, 1)
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	rec, err := ConsentRecord(s.topic, u)
	if err != nil {
		s.log.Error("encode consent update", zap.String("error_class", "encode"))
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		return
	}
	if err := s.produce(r.Context(), []*kgo.Record{rec}); err != nil {
		s.metrics.rejected(reasonUnavailable, 1)
		unavailable(w)
		return
	}
	s.metrics.accept(1)
	writeJSON(w, http.StatusAccepted, consentReply{Accepted: 1, UpdateID: u.UpdateID})
}

// decodeErase validates an erasure body: one object naming the user.
func (s *Server) decodeErase(b []byte, received time.Time) (*schemas.ConsentUpdate, error) {
	obj, err := singleObject(b, "an erasure")
	if err != nil {
		return nil, err
	}
	var user userRef
	err = eachMemberChecked(obj, func(key, v []byte) error {
		_, err := user.member(string(key), v)
		return err
	})
	if rerr := bodyErr(b, err); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	u := &schemas.ConsentUpdate{UserKey: user.key(), Erased: true, UpdateID: uuid.NewString(), TimestampMs: received.UnixMilli()}
	if u.UserKey == "" {
		return nil, errNoUser
	}
	return u, nil
}

// decodeConsent validates a consent body: a user id, a purpose -> bool object naming only the
// policy's purposes, an optional RFC 3339 timestamp and notice version.
func (s *Server) decodeConsent(b []byte, received time.Time) (*schemas.ConsentUpdate, error) {
	obj, err := singleObject(b, "a consent update")
	if err != nil {
		return nil, err
	}
	var (
		user    userRef
		consent map[string]bool
		ts      time.Time
		u       = &schemas.ConsentUpdate{}
	)
	err = eachMemberChecked(obj, func(key, v []byte) error {
		if named, err := user.member(string(key), v); named {
			return err
		}
		var err error
		switch string(key) {
		case "consent":
			consent, err = consentField(v, "consent")
		case "timestamp":
			ts, err = timeField(v, "timestamp")
		case "notice_version":
			u.NoticeVersion, err = stringField(v, "notice_version", maxShort)
		}
		return err
	})
	if rerr := bodyErr(b, err); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	u.UserKey = user.key()
	if u.UserKey == "" {
		return nil, errNoUser
	}
	if len(consent) == 0 {
		return nil, fieldErr("consent", "is required: an object of purpose: true|false")
	}
	for _, purpose := range slices.Sorted(maps.Keys(consent)) { // sorted: the same body always names the same purpose
		if !s.purposes[purpose] {
			return nil, fieldErr("consent."+purpose, "is not a purpose of the policy (%s)", s.purposeList)
		}
	}
	u.Consent = consent
	u.UpdateID = uuid.NewString()
	if ts.IsZero() {
		ts = received
	}
	u.TimestampMs = ts.UnixMilli()
	return u, nil
}

// singleObject returns the one JSON object of a consent or erasure body; what names the body in
// the error for a batch. Its members are read with eachMemberChecked: a repeated key or an
// out-of-range number anywhere in it is an error naming the member's path.
func singleObject(b []byte, what string) ([]byte, error) {
	items, top, rerr := splitBody(b, false)
	if rerr != nil {
		return nil, rerr
	}
	if !isNull(top.batch) {
		if !validText(b) { // the batch's events are not read: malformed text in them comes first
			return nil, malformed("%s", bodyMessage(b))
		}
		return nil, malformed("%s is one object, not a batch", what)
	}
	return items[0], nil
}

// userRef collects the two fields that name a body's user.
type userRef struct{ userID, anonID string }

// member reads a top-level member if it names the user; named reports whether it did.
func (u *userRef) member(key string, v []byte) (named bool, err error) {
	switch key {
	case "user_id":
		u.userID, err = idField(v, "user_id", maxID)
	case "anonymous_id":
		u.anonID, err = idField(v, "anonymous_id", maxID)
	default:
		return false, nil
	}
	return true, err
}

// key is the user key: user_id if given, else anonymous_id.
func (u *userRef) key() string { return cmp.Or(u.userID, u.anonID) }
