package ingest

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A write key over ingest.rate_limit gets 429 with Retry-After and nothing is stored; another
// key keeps its own budget, and consent updates are never limited.
func TestRateLimitPerWriteKey(t *testing.T) {
	h := newHarness(t, "  rate_limit: 1\n  rate_burst: 3\n")
	code, _, body := h.do(http.MethodPost, "/v1/events", batchOf(3, oneEvent), bearer(testKey))
	require.Equal(t, http.StatusAccepted, code, body)

	code, hdrs, body := h.do(http.MethodPost, "/v1/events", oneEvent, bearer(testKey))
	require.Equal(t, http.StatusTooManyRequests, code, body)
	secs, err := strconv.Atoi(hdrs.Get("Retry-After"))
	require.NoError(t, err, "Retry-After must be whole seconds")
	require.GreaterOrEqual(t, secs, 1)
	require.Contains(t, body, "ingest.rate_limit")

	code, _, body = h.do(http.MethodPost, "/v1/batch", `{"batch":[{"type":"track","event":"e","userId":"u"}]}`, basic(testKey))
	require.Equal(t, http.StatusTooManyRequests, code, "the Segment endpoints share the key's budget: %s", body)

	code, _, body = h.do(http.MethodPost, "/v1/events", oneEvent, bearer(otherKey))
	require.Equal(t, http.StatusAccepted, code, "another key has its own bucket: %s", body)

	code, _, body = h.do(http.MethodPost, "/v1/consent", `{"user_id":"u-42","consent":{"marketing":false}}`, bearer(testKey))
	require.Equal(t, http.StatusAccepted, code, "a withdrawal is never rate limited: %s", body)

	h.records(3 + 1 + 1) // the three, the other key's one and the consent update: nothing of the refused requests
	require.Equal(t, 2.0, h.metric("tollgate_ingest_rejected_events_total", "reason", reasonRateLimited))
}

// A batch larger than the burst is charged the burst, so it passes once the bucket is full
// instead of never; the bucket refills at the configured rate.
func TestRateLimitBucket(t *testing.T) {
	l := newKeyLimits([]string{"k"}, 10, 5)
	now := time.Now()
	require.Zero(t, l.wait("k", 500, now), "a full bucket admits a batch larger than the burst")
	require.Greater(t, l.wait("k", 1, now), time.Duration(0))
	require.Zero(t, l.wait("k", 1, now.Add(100*time.Millisecond)), "one token back after 1/rate")
	require.Zero(t, newKeyLimits([]string{"k"}, 0, 0).wait("k", 1e6, now), "rate_limit 0 is no limit")
}
