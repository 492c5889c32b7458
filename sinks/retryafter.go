package sinks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
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
// five vendors cannot drift apart (CONTRACT §7):
//
//   - 2xx: Delivered.
//   - 408, 425, 429 and every 5xx: Retry, honouring Retry-After. A 5xx may mean the vendor did
//     process the request; vendors with a dedup key (Meta, TikTok, Google Ads, webhooks) make the
//     resend harmless, GA4 may double count (its adapter documents that).
//   - 3xx: Permanent. Clients built by NewHTTPClient never follow redirects (a redirect to an
//     internal address is the classic SSRF trick); a vendor that redirects is misconfigured, and
//     retrying will not change its answer.
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
	default:
		return Verdict{Class: Permanent, Reason: reason}
	}
}

// ClassifyTransportError reads an error from http.Client.Do (no response at all). The Reason is a
// fixed word, never err.Error(): a *url.Error's text holds the full request URL, and Meta's and
// GA4's URLs carry their secrets in the query string, so that text must never reach a log, a
// metric label or an audit row.
//
// Everything is Retry except a connection the SSRF guard refused (Permanent: the policy, not
// the network, has to change) and a cancelled context (Retry, reason "canceled": the runner is
// shutting down and the events go back to be resent later).
func ClassifyTransportError(err error) Verdict {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return Verdict{Class: Delivered}
	case errors.Is(err, ErrPrivateAddress):
		return Verdict{Class: Permanent, Reason: "private_address"}
	case errors.Is(err, context.Canceled):
		return Verdict{Class: Retry, Reason: "canceled"}
	case errors.Is(err, context.DeadlineExceeded):
		return Verdict{Class: Retry, Reason: "timeout"}
	case errors.As(err, &dnsErr):
		return Verdict{Class: Retry, Reason: "dns_error"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Verdict{Class: Retry, Reason: "connection_refused"}
	case errors.Is(err, syscall.ECONNRESET):
		return Verdict{Class: Retry, Reason: "connection_reset"}
	case errors.As(err, &netErr) && netErr.Timeout():
		return Verdict{Class: Retry, Reason: "timeout"}
	}
	return Verdict{Class: Retry, Reason: "transport_error"}
}
