package ingest

import (
	"cmp"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func TestConsentEndpoint(t *testing.T) {
	tests := []struct {
		name, body string
		want       int
		err        string
		key        string
		update     schemas.ConsentUpdate // compared without update_id
	}{
		{name: "withdrawal", body: `{"user_id":"u-42","consent":{"marketing":false,"analytics":true},"timestamp":"2026-11-23T10:00:00Z","notice_version":"v3"}`,
			want: 202, key: "u-42", update: schemas.ConsentUpdate{UserKey: "u-42", Consent: map[string]bool{"marketing": false, "analytics": true},
				TimestampMs: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixMilli(), NoticeVersion: "v3"}},
		{name: "anonymous", body: `{"anonymous_id":"a-1","consent":{"necessary":true}}`, want: 202, key: "a-1",
			update: schemas.ConsentUpdate{UserKey: "a-1", Consent: map[string]bool{"necessary": true}}},
		{name: "user_id wins", body: `{"anonymous_id":"a-1","user_id":"u-1","consent":{"analytics":false}}`, want: 202, key: "u-1",
			update: schemas.ConsentUpdate{UserKey: "u-1", Consent: map[string]bool{"analytics": false}}},
		{name: "unknown purpose", body: `{"user_id":"u","consent":{"analytics":true,"profiling":false}}`, want: 400,
			err: `field "consent.profiling" is not a purpose of the policy (necessary, analytics, marketing)`},
		{name: "non-bool", body: `{"user_id":"u","consent":{"analytics":"no"}}`, want: 400, err: `field "consent.analytics" must be true or false`},
		{name: "no user", body: `{"consent":{"analytics":true}}`, want: 400, err: `field "user_id" or "anonymous_id" is required`},
		{name: "no consent", body: `{"user_id":"u"}`, want: 400, err: `field "consent" is required`},
		{name: "empty consent", body: `{"user_id":"u","consent":{}}`, want: 400, err: `field "consent" is required`},
		{name: "bad timestamp", body: `{"user_id":"u","consent":{"analytics":true},"timestamp":"now"}`, want: 400, err: `field "timestamp"`},
		{name: "batch", body: `{"batch":[{"user_id":"u","consent":{"analytics":true}}]}`, want: 400, err: "not a batch"},
		{name: "malformed", body: `{"user_id":`, want: 400, err: "malformed JSON"},
		{name: "not an object", body: `[1]`, want: 400, err: "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			before := time.Now().UnixMilli()
			code, _, body := h.do("POST", "/v1/consent", tt.body, bearer(testKey))
			require.Equal(t, tt.want, code, body)
			if tt.want != 202 {
				var reply errorBody
				require.NoError(t, json.Unmarshal([]byte(body), &reply))
				assert.Contains(t, reply.Error, tt.err)
				assert.Zero(t, h.count())
				return
			}
			var reply consentReply
			require.NoError(t, json.Unmarshal([]byte(body), &reply))
			assert.Equal(t, 1, reply.Accepted)

			recs := h.records(1)
			assert.Equal(t, tt.key, string(recs[0].Key))
			assert.Equal(t, "consent", header(recs[0], "tg-type"))
			require.True(t, schemas.ConsentUpdates.Is(recs[0].Value))
			u, err := schemas.ConsentUpdates.Decode(recs[0].Value)
			require.NoError(t, err)
			id, err := uuid.Parse(u.UpdateID)
			require.NoError(t, err)
			assert.Equal(t, uuid.Version(4), id.Version())
			assert.Equal(t, reply.UpdateID, u.UpdateID)
			assert.False(t, u.Erased)
			if tt.update.TimestampMs == 0 {
				assert.GreaterOrEqual(t, u.TimestampMs, before, "a missing timestamp is the receive time")
				u.TimestampMs = 0
			}
			u.UpdateID = ""
			assert.Equal(t, tt.update, u)
		})
	}
}

// TestConsentAndEventsShareKey: a user's consent update and events go to the same partition.
func TestConsentAndEventsShareKey(t *testing.T) {
	h := newHarness(t, "")
	code, _, body := h.do("POST", "/v1/events", batchOf(3, `{"event":"a","user_id":"u-42"}`), bearer(testKey))
	require.Equal(t, 202, code, body)
	code, _, body = h.do("POST", "/v1/consent", `{"user_id":"u-42","consent":{"marketing":false}}`, bearer(testKey))
	require.Equal(t, 202, code, body)
	recs := h.records(4)
	for _, r := range recs {
		assert.Equal(t, recs[0].Partition, r.Partition)
		assert.Equal(t, "u-42", string(r.Key))
	}
}

func TestEraseEndpoint(t *testing.T) {
	tests := []struct {
		name, body, auth string
		want             int
		err, key         string
	}{
		{name: "user", body: `{"user_id":"u-42"}`, want: 202, key: "u-42"},
		{name: "anonymous", body: `{"anonymous_id":"a-7"}`, want: 202, key: "a-7"},
		{name: "no user", body: `{}`, want: 400, err: `field "user_id" or "anonymous_id" is required`},
		{name: "non-string user", body: `{"user_id":7}`, want: 400, err: `field "user_id"`},
		{name: "batch", body: `{"batch":[{"user_id":"u"}]}`, want: 400, err: "not a batch"},
		{name: "malformed", body: `{"user_id":`, want: 400, err: "malformed JSON"},
		{name: "bad key", body: `{"user_id":"u-42"}`, auth: "nope", want: 401, err: "write key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "")
			before := time.Now().UnixMilli()
			code, _, body := h.do("POST", "/v1/erase", tt.body, bearer(cmp.Or(tt.auth, testKey)))
			require.Equal(t, tt.want, code, body)
			if tt.want != 202 {
				var reply errorBody
				require.NoError(t, json.Unmarshal([]byte(body), &reply))
				assert.Contains(t, reply.Error, tt.err)
				assert.Zero(t, h.count(), "a refused erasure stores nothing")
				return
			}
			recs := h.records(1)
			assert.Equal(t, tt.key, string(recs[0].Key), "keyed like the user's events")
			u, err := schemas.ConsentUpdates.Decode(recs[0].Value)
			require.NoError(t, err)
			assert.True(t, u.Erased)
			assert.Equal(t, tt.key, u.UserKey)
			assert.Empty(t, u.Consent)
			assert.GreaterOrEqual(t, u.TimestampMs, before)
		})
	}
}
