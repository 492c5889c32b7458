package sdk_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"soon", 0},
		{"99999999999999", sdk.MaxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), sdk.MaxRetryAfter},
		{"Sunday, 23-Nov-26 10:01:00 GMT", time.Minute}, // RFC 850, still valid per RFC 9110
	} {
		require.Equal(t, tc.want, sdk.ParseRetryAfter(tc.in, now), tc.in)
	}
}

func TestClassifyStatus(t *testing.T) {
	ra := http.Header{"Retry-After": {"9"}}
	for _, tc := range []struct {
		status int
		want   sdk.Verdict
	}{
		{200, sdk.Verdict{Class: sdk.Delivered}},
		{204, sdk.Verdict{Class: sdk.Delivered}},
		{301, sdk.Verdict{Class: sdk.Permanent, Reason: "http_301"}},
		{302, sdk.Verdict{Class: sdk.Permanent, Reason: "http_302"}},
		{400, sdk.Verdict{Class: sdk.Permanent, Reason: "http_400", Split: true}},
		{413, sdk.Verdict{Class: sdk.Permanent, Reason: "http_413", Split: true}},
		{422, sdk.Verdict{Class: sdk.Permanent, Reason: "http_422", Split: true}},
		{401, sdk.Verdict{Class: sdk.Permanent, Reason: "http_401"}},
		{408, sdk.Verdict{Class: sdk.Retry, Reason: "http_408", RetryAfter: 9 * time.Second}},
		{410, sdk.Verdict{Class: sdk.Permanent, Reason: "http_410"}},
		{429, sdk.Verdict{Class: sdk.Retry, Reason: "http_429", RetryAfter: 9 * time.Second}},
		{500, sdk.Verdict{Class: sdk.Retry, Reason: "http_500", RetryAfter: 9 * time.Second}},
		{503, sdk.Verdict{Class: sdk.Retry, Reason: "http_503", RetryAfter: 9 * time.Second}},
	} {
		require.Equal(t, tc.want, sdk.ClassifyStatus(tc.status, ra, now), tc.status)
	}
}
