package sdk

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps any wait a vendor asks for. A hostile or buggy answer ("Retry-After:
// 999999999") must not park a destination for years; 24 h is above every documented vendor
// delay (Google Ads' TOO_RECENT_* asks for 6 h).
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an HTTP date (RFC 9110
// §10.2.3). It returns 0 for an empty, unreadable or past value, so callers fall back to their own
// backoff, and caps the result at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs >= int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return clampDelay(t.Sub(now))
}

func clampDelay(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d > MaxRetryAfter:
		return MaxRetryAfter
	}
	return d
}

// ClassifyStatus is the HTTP-level reading every adapter starts from, kept in one place so the
// five vendors cannot drift apart (docs/delivery.md):
//
//   - 2xx: Delivered.
//   - 408, 425, 429 and every 5xx: Retry, honouring Retry-After. A 5xx may mean the vendor did
//     process the request; vendors with a dedup key (Meta, TikTok, Google Ads, webhooks) make the
//     resend harmless, GA4 may double count (its adapter documents that).
//   - 3xx: Permanent. Clients built by NewHTTPClient never follow redirects (a redirect to an
//     internal address is the classic SSRF trick); a vendor that redirects is misconfigured, and
//     retrying will not change its answer.
//   - 400, 413, 422: Permanent with Split: the batch may pass without some of its events.
//   - any other status: Permanent.
//
// Reason is "http_<status>". Adapters refine the verdict from the body (Graph error codes,
// TikTok's code, Google's RetryInfo) and fall back to this.
func ClassifyStatus(status int, header http.Header, now time.Time) Verdict {
	reason := "http_" + strconv.Itoa(status)
	switch {
	case status >= 200 && status < 300:
		return Verdict{Class: Delivered}
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500 && status < 600:
		return Verdict{Class: Retry, Reason: reason, RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now)}
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge, status == http.StatusUnprocessableEntity:
		// The request as a whole was refused; a smaller one may pass (see Verdict.Split).
		return Verdict{Class: Permanent, Reason: reason, Split: true}
	default:
		return Verdict{Class: Permanent, Reason: reason}
	}
}
