package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

func post(t *testing.T, url string, header http.Header, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestNewUnknownKindPanics(t *testing.T) {
	require.Panics(t, func() { New("snapchat") })
	_, err := Serve("snapchat", "127.0.0.1:0")
	require.EqualError(t, err, `standin: unknown kind "snapchat" (known: [ga4 meta_capi tiktok google_ads webhook])`)
}

func TestRecordsConcurrentRequests(t *testing.T) {
	s := New("ga4")
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			status, _ := post(t, s.URL+"/mp/collect?measurement_id=G-1&api_secret=x", nil, fmt.Sprintf(`{"client_id":"%d"}`, i))
			require.Equal(t, http.StatusNoContent, status)
		})
	}
	wg.Wait()
	reqs := s.Requests()
	require.Len(t, reqs, 50)
	for _, r := range reqs {
		require.Equal(t, "/mp/collect", r.Path)
		require.Equal(t, "G-1", r.Query.Get("measurement_id"))
		require.Equal(t, http.StatusNoContent, r.Status)
		require.True(t, r.Accepted)
	}
	s.Reset()
	require.Empty(t, s.Requests())
}

func TestFaultQueue(t *testing.T) {
	s := New("webhook")
	defer s.Close()
	s.SetFailures(Fault{Status: 503, RetryAfter: "7", Count: 2}, Fault{Status: 429})
	var got []int
	for range 4 {
		status, _ := post(t, s.URL, nil, `{"events":[]}`)
		got = append(got, status)
	}
	require.Equal(t, []int{503, 503, 429, 204}, got)

	s.SetFailures(Fault{Status: 500, Count: -1})
	for range 3 {
		status, _ := post(t, s.URL, nil, `{"events":[]}`)
		require.Equal(t, 500, status)
	}
	s.SetFailures()
	status, _ := post(t, s.URL, nil, `{"events":[]}`)
	require.Equal(t, 204, status)
}

func TestHangIsReleasedByClose(t *testing.T) {
	s := New("webhook")
	s.SetFailures(Fault{Hang: time.Hour})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.URL, "application/json", strings.NewReader(`{"events":[]}`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return len(s.Requests()) == 1 }, 5*time.Second, 10*time.Millisecond)
	start := time.Now()
	s.Close()
	<-done
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestMetaAnswers(t *testing.T) {
	s := New("meta_capi")
	defer s.Close()
	ok := fmt.Sprintf(`{"data":[{"event_name":"Purchase","event_time":%d,"event_id":"e1","action_source":"website","user_data":{"client_user_agent":"UA"}}]}`, time.Now().Unix())
	status, body := post(t, s.URL+"/v21.0/123/events", nil, ok)
	require.Equal(t, 400, status)
	require.Equal(t, 190.0, body["error"].(map[string]any)["code"])

	status, body = post(t, s.URL+"/v21.0/123/events?access_token=t", nil, ok)
	require.Equal(t, 200, status)
	require.Equal(t, 1.0, body["events_received"])

	old := strings.Replace(ok, fmt.Sprint(time.Now().Unix()), fmt.Sprint(time.Now().Add(-8*24*time.Hour).Unix()), 1)
	status, body = post(t, s.URL+"/v21.0/123/events?access_token=t", nil, old)
	require.Equal(t, 400, status)
	require.Equal(t, 2804003.0, body["error"].(map[string]any)["error_subcode"])

	noUA := strings.Replace(ok, `"client_user_agent":"UA"`, `"em":["x"]`, 1)
	status, _ = post(t, s.URL+"/v21.0/123/events?access_token=t", nil, noUA)
	require.Equal(t, 400, status)
	require.Equal(t, []string{"e1"}, s.EventIDs())
}

func TestGA4DebugValidation(t *testing.T) {
	s := New("ga4")
	defer s.Close()
	status, body := post(t, s.URL+"/debug/mp/collect", nil, `{"events":[{"name":"1bad"}]}`)
	require.Equal(t, 200, status)
	require.Len(t, body["validationMessages"], 2) // no client_id, bad name
	status, body = post(t, s.URL+"/debug/mp/collect", nil, `{"client_id":"c","events":[{"name":"ok"}]}`)
	require.Equal(t, 200, status)
	require.Empty(t, body["validationMessages"])
}

func TestTikTokAndGoogleAuth(t *testing.T) {
	tt := New("tiktok")
	defer tt.Close()
	status, body := post(t, tt.URL+"/open_api/v1.3/event/track/", nil, `{}`)
	require.Equal(t, 200, status) // TikTok reports errors in the body
	require.Equal(t, 40105.0, body["code"])

	g := New("google_ads")
	defer g.Close()
	status, body = post(t, g.URL+"/v1/events:ingest", nil, `{}`)
	require.Equal(t, 401, status)
	require.Equal(t, "UNAUTHENTICATED", body["error"].(map[string]any)["status"])
}

// Run serves every stand-in and logs one line per request with no query (tokens live there).
func TestRun(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, map[string]string{"meta_capi": "127.0.0.1:0", "webhook": "127.0.0.1:0"}, zap.New(core))
	}()
	require.Eventually(t, func() bool { return logs.FilterMessage("standin listening").Len() == 2 }, 5*time.Second, 10*time.Millisecond)
	var metaURL string
	for _, e := range logs.FilterMessage("standin listening").All() {
		if e.ContextMap()["kind"] == "meta_capi" {
			metaURL = e.ContextMap()["url"].(string)
		}
	}
	status, _ := post(t, metaURL+"/v21.0/123/events?access_token=SECRET", nil, `{"data":[]}`)
	require.Equal(t, 400, status)
	require.Eventually(t, func() bool { return logs.FilterMessage("standin request").Len() == 1 }, 5*time.Second, 10*time.Millisecond)
	line := logs.FilterMessage("standin request").All()[0].ContextMap()
	require.Equal(t, map[string]any{"kind": "meta_capi", "method": "POST", "path": "/v21.0/123/events", "status": int64(400), "events": int64(0)}, line)
	cancel()
	require.NoError(t, <-done)
}

func TestRunFailsOnBadAddress(t *testing.T) {
	err := Run(context.Background(), map[string]string{"ga4": "127.0.0.1:0", "webhook": "256.0.0.1:1"}, zap.NewNop())
	require.ErrorContains(t, err, "standin webhook")
	require.EqualError(t, Run(context.Background(), nil, zap.NewNop()), "standin: no stand-in to run")
}

// Every destination type a policy may name has a stand-in, and no stand-in plays a type the
// policy does not know.
func TestStandInsMatchPolicyTypes(t *testing.T) {
	require.ElementsMatch(t, policy.DestinationTypes, slices.Collect(maps.Keys(vendors)))
}

// GA4 events carry no id; the stand-in tells them apart by client, time and name, so a test can
// count an event GA4 received twice.
func TestGA4Keys(t *testing.T) {
	s := New(policy.TypeGA4)
	t.Cleanup(s.Close)
	body := `{"client_id":"c1","events":[{"name":"purchase","timestamp_micros":5},{"name":"page_view","timestamp_micros":6}]}`
	for range 2 {
		resp, err := http.Post(s.URL+"/mp/collect?measurement_id=G-1&api_secret=s", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Equal(t, []string{"c1|5|purchase", "c1|6|page_view", "c1|5|purchase", "c1|6|page_view"}, s.Keys())
	require.Empty(t, s.EventIDs())
}

// WithoutRecords answers as ever and keeps nothing (what `tollgate standins` serves with).
func TestWithoutRecords(t *testing.T) {
	s, err := Serve("webhook", "127.0.0.1:0", WithoutRecords())
	require.NoError(t, err)
	defer s.Close()
	status, _ := post(t, s.URL+"/hook", nil, `{"events":[{"event_id":"e1"}]}`)
	require.Equal(t, 204, status)
	require.Empty(t, s.Requests())
	require.Empty(t, s.EventIDs())
}
