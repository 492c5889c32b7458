package ingest

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// reasonRateLimited: events refused because their write key was over ingest.rate_limit; the
// client got a 429 with Retry-After (per event).
const reasonRateLimited = "rate_limited"

// keyLimits holds one token bucket per configured write key (ingest.rate_limit events/s,
// ingest.rate_burst deep). It is built once from the config and never grows, so an attacker
// cycling through unknown keys cannot make it allocate: only keys that authenticated reach it.
// A nil keyLimits (rate_limit 0) admits everything.
type keyLimits map[[sha256.Size]byte]*rate.Limiter

func newKeyLimits(keys []string, perSecond, burst int) keyLimits {
	if perSecond <= 0 {
		return nil
	}
	l := keyLimits{}
	for _, k := range keys {
		l[sha256.Sum256([]byte(k))] = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return l
}

// wait returns 0 when n events of key may pass now (taking their tokens), or how long the client
// should wait before sending them again (taking nothing). A request larger than the burst is
// charged the burst, so it passes once the bucket is full rather than never.
func (l keyLimits) wait(key string, n int, now time.Time) time.Duration {
	lim := l[sha256.Sum256([]byte(key))]
	if lim == nil {
		return 0
	}
	n = min(n, lim.Burst())
	r := lim.ReserveN(now, n)
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}

// admit applies the write key's rate limit to a request carrying n events. Over the limit it
// answers 429 with Retry-After (whole seconds, at least 1) and returns false; the request's
// events are not stored, so the client sends them again. Consent updates and erasures are not
// limited: a flood of events on a key must never delay a user's withdrawal.
func (s *Server) admit(w http.ResponseWriter, key string, n int) bool {
	d := s.limits.wait(key, n, time.Now())
	if d <= 0 {
		return true
	}
	s.metrics.rejected(reasonRateLimited, n)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	writeJSON(w, http.StatusTooManyRequests, errorBody{Error: "write key over its rate limit (ingest.rate_limit), retry after the Retry-After seconds"})
	return false
}
