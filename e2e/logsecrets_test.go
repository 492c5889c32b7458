package e2e

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

// TestLogsHoldNoSecretsOrPII runs the whole pipeline through its happy and unhappy paths —
// events, a Segment batch, a consent withdrawal, an erasure, a wrong write key, a malformed
// body, a vendor answering 503 and then 400 — stops it, and greps every log line it wrote for
// the secrets it was given and the raw personal data it handled. Log lines are evidence; none
// may carry a write key, a vendor token, the webhook secret, an e-mail address, a phone number
// or a client IP.
func TestLogsHoldNoSecretsOrPII(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	events := sample.Events(uint64(time.Now().UnixNano()), 108, 20, time.Now().Add(-time.Minute))
	p.meta.SetFailures(standin.Fault{Status: 503, RetryAfter: "1"}, standin.Fault{Status: 400})
	p.ga4.SetFailures(standin.Fault{Status: 500})
	n, err := sample.Send(p.ingestURL, writeKey, events)
	require.NoError(t, err)
	require.Equal(t, len(events), n)
	require.NoError(t, sample.Withdraw(p.ingestURL, writeKey, events[0], "marketing"))
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/erase", writeKey, map[string]string{"user_id": "u-erase-me@example.com"}, false, nil))

	segment := `{"batch":[{"type":"track","event":"Order Completed","userId":"seg-1","context":{"ip":"203.0.113.77","userAgent":"ua"},"properties":{"email":"Seg.User@Example.com","phone":"+1 (650) 555-0199"}}]}`
	req, _ := http.NewRequest(http.MethodPost, p.ingestURL+"/v1/batch", strings.NewReader(segment))
	req.SetBasicAuth(writeKey, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	const wrongKey = "wk_wrong_but_close_to_real_e2e"
	for _, bad := range []struct{ key, body string }{
		{wrongKey, `{"event":"x","user_id":"u"}`},
		{writeKey, `{"event":"x","user_id":"bad@example.com","properties":{"email":`},
		{writeKey, `{"event":"x","user_id":"u","properties":{"phone":"+1 (650) 555-0100"},"timestamp":"yesterday"}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, p.ingestURL+"/v1/events", strings.NewReader(bad.body))
		req.Header.Set("Authorization", "Bearer "+bad.key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.GreaterOrEqual(t, resp.StatusCode, 400)
	}
	waitDecisions(t, p, "run_id = ''", (len(events)+1)*3)
	require.Eventually(t, func() bool { return len(p.meta.Requests()) >= 2 && len(p.ga4.Requests()) >= 2 }, time.Minute, 100*time.Millisecond,
		"the vendor error paths must have run")
	p.stop()

	logs := p.logs.String()
	require.Greater(t, strings.Count(logs, "\n"), 5, "the run must have logged something")
	rawSecret, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(hookSecret, "whsec_"))
	require.NoError(t, err)
	for name, secret := range map[string]string{
		"write key": writeKey, "wrong write key": wrongKey, "GA4 api secret": "ga4-secret", "Meta token": "meta-token",
		"webhook secret": hookSecret, "webhook secret (base64)": strings.TrimPrefix(hookSecret, "whsec_"), "webhook key": string(rawSecret),
	} {
		require.NotContains(t, logs, secret, "the logs hold the %s", name)
	}
	pii := regexp.MustCompile(`(?i)[a-z0-9._%+-]+@example\.com|\(650\) 555-\d{4}|\+?1?6505550\d{3}|203\.0\.113\.\d+`)
	for _, line := range p.logs.lines() {
		require.False(t, pii.MatchString(line), "a log line holds raw personal data: %s", line)
	}
}
