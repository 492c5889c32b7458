package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

const (
	numEvents = 270 // 5 × 54: every jurisdiction × consent × GPC combination five times
	numUsers  = 60
)

// TestPipelineEndToEnd sends mixed-consent traffic and one withdrawal through the ingest API of a
// running `tollgate run`, then checks, against an independent reading of docs/consent.md, every
// decision in ClickHouse and every event and field each vendor stand-in received.
func TestPipelineEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	events := sample.Events(uint64(time.Now().UnixNano()), numEvents, numUsers, time.Now().Add(-time.Minute))
	half := len(events) / 2
	n, err := sample.Send(p.ingestURL, writeKey, events[:half])
	require.NoError(t, err)
	// The first half is decided before the withdrawal is sent, so the expected outcome does not
	// depend on timing: a withdrawal also blocks events queued before it but processed after it
	// (TestWithdrawalBlocksQueuedEvents).
	waitDecisions(t, p, "run_id = ''", half*3)
	require.NoError(t, sample.Withdraw(p.ingestURL, writeKey, events[0], "marketing"))
	m, err := sample.Send(p.ingestURL, writeKey, events[half:])
	require.NoError(t, err)
	require.Equal(t, numEvents, n+m)

	withdrawnUser := events[0].UserKey()
	want := map[string][2]string{} // event_id/destination -> outcome, reason
	forwarded := map[string][]string{}
	for i, e := range events {
		for _, dest := range []string{"ga4", "meta", "ops"} {
			o, r := expect(e, dest, i >= half && e.UserKey() == withdrawnUser)
			want[e.EventID+"/"+dest] = [2]string{o, r}
			if o == "forwarded" {
				forwarded[dest] = append(forwarded[dest], e.EventID)
			}
		}
	}
	require.NotEmpty(t, forwarded["meta"], "the sample must forward something to meta")

	checkDecisions(t, p, want)
	waitDeliveries(t, p, len(forwarded["ga4"])+len(forwarded["meta"])+len(forwarded["ops"]))

	byID := map[string]sample.Event{}
	for _, e := range events {
		byID[e.EventID] = e
	}
	checkMeta(t, p.meta, byID, forwarded["meta"])
	checkOps(t, p.ops, byID, forwarded["ops"])
	checkGA4(t, p.ga4, len(forwarded["ga4"]))
	checkNoRawEmail(t, p, events)
}

// expect is docs/consent.md for the demo policy, written independently of processors/consent.
func expect(e sample.Event, dest string, withdrawn bool) (string, string) {
	purpose := map[string]string{"ga4": "analytics", "meta": "marketing", "ops": "necessary"}[dest]
	if purpose == "necessary" {
		return "forwarded", "necessary"
	}
	if withdrawn && purpose == "marketing" {
		return "blocked", "withdrawn"
	}
	v, chosen := e.Consent[purpose]
	if e.Jurisdiction == "US-CA" {
		if chosen && !v {
			return "blocked", "opted_out"
		}
	} else if !chosen || !v {
		return "blocked", "no_consent"
	}
	if dest == "meta" && e.GPC {
		return "blocked", "gpc"
	}
	if dest == "meta" && regexp.MustCompile(`(?i)/(pharmacy|clinic|health|diagnos)`).MatchString(e.Context["page_url"].(string)) {
		return "blocked", "sensitive"
	}
	return "forwarded", "consented"
}

func checkDecisions(t *testing.T, p *pipeline, want map[string][2]string) {
	waitDecisions(t, p, "run_id = ''", len(want))
	db := p.openDB()
	ctx := context.Background()
	rows, err := db.Query(ctx, "SELECT event_id, destination, outcome, reason, fields_sent, policy_version FROM "+p.db+".decisions FINAL WHERE run_id = ''")
	require.NoError(t, err)
	defer rows.Close()
	got := map[string][2]string{}
	for rows.Next() {
		var id, dest, outcome, reason, version string
		var sent []string
		require.NoError(t, rows.Scan(&id, &dest, &outcome, &reason, &sent, &version))
		key := id + "/" + dest
		require.NotContains(t, got, key, "two decisions for %s", key)
		got[key] = [2]string{outcome, reason}
		require.Equal(t, "e2e-1", version)
		if outcome == "blocked" {
			require.Empty(t, sent, "blocked decision %s lists fields sent", key)
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got, "decisions differ from docs/consent.md")
}

// waitDecisions waits until ClickHouse holds at least n decisions matching the condition.
func waitDecisions(t *testing.T, p *pipeline, where string, n int) {
	t.Helper()
	db := p.openDB()
	require.Eventually(t, func() bool {
		var got uint64
		err := db.QueryRow(context.Background(), "SELECT count() FROM "+p.db+".decisions FINAL WHERE "+where).Scan(&got)
		return err == nil && got >= uint64(n)
	}, 90*time.Second, 100*time.Millisecond, "decisions (%s) never reached %d; logs:\n%s", where, n, p.logs)
}

func waitDeliveries(t *testing.T, p *pipeline, forwarded int) {
	db := p.openDB()
	require.Eventually(t, func() bool {
		var n uint64
		err := db.QueryRow(context.Background(), "SELECT count() FROM "+p.db+".deliveries FINAL WHERE status = 'delivered'").Scan(&n)
		return err == nil && n >= uint64(forwarded)
	}, 90*time.Second, 200*time.Millisecond, "deliveries never reached %d; logs:\n%s", forwarded, p.logs)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// checkMeta checks that meta got exactly the forwarded events, and each field as the policy and
// docs/vendors.md say: hashed email and phone of the normalised value, nothing unlisted (no IP).
func checkMeta(t *testing.T, s *standin.Server, byID map[string]sample.Event, want []string) {
	type metaEvent struct {
		EventID        string `json:"event_id"`
		EventSourceURL string `json:"event_source_url"`
		UserData       struct {
			Em              []string `json:"em"`
			Ph              []string `json:"ph"`
			ClientIPAddress string   `json:"client_ip_address"`
			ClientUserAgent string   `json:"client_user_agent"`
			Fbc             string   `json:"fbc"`
		} `json:"user_data"`
		CustomData struct {
			Value    float64 `json:"value"`
			Currency string  `json:"currency"`
		} `json:"custom_data"`
	}
	var got []string
	for _, r := range s.Requests() {
		require.Equal(t, "/v21.0/123/events", r.Path)
		require.Equal(t, "meta-token", r.Query.Get("access_token"))
		var body struct{ Data []metaEvent }
		require.NoError(t, json.Unmarshal(r.Body, &body))
		for _, m := range body.Data {
			got = append(got, m.EventID)
			e := byID[m.EventID]
			email := e.Properties["email"].(string)
			phone := regexp.MustCompile(`\D`).ReplaceAllString(e.Properties["phone"].(string), "")
			require.Equal(t, []string{sha(strings.ToLower(strings.TrimSpace(email)))}, m.UserData.Em, m.EventID)
			require.Equal(t, []string{sha(phone)}, m.UserData.Ph, m.EventID)
			require.Equal(t, e.Context["page_url"], m.EventSourceURL)
			require.Equal(t, e.Context["user_agent"], m.UserData.ClientUserAgent)
			require.Empty(t, m.UserData.ClientIPAddress, "context.ip is not on meta's field list")
			require.True(t, strings.HasSuffix(m.UserData.Fbc, "."+e.Properties["fbclid"].(string)), "fbc %q", m.UserData.Fbc)
			require.Equal(t, e.Properties["order_value"], m.CustomData.Value)
			require.Equal(t, "EUR", m.CustomData.Currency)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got, "meta must receive exactly the events §5 forwards, once each")
}

// checkOps checks the webhook got every event (purpose necessary) with only its two fields.
func checkOps(t *testing.T, s *standin.Server, byID map[string]sample.Event, want []string) {
	var got []string
	for _, r := range s.Requests() {
		require.Equal(t, http.StatusNoContent/100, r.Status/100, "webhook answered %d (bad signature?)", r.Status)
		var body struct {
			Events []struct {
				EventID    string                     `json:"event_id"`
				Context    map[string]json.RawMessage `json:"context"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"events"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		for _, ev := range body.Events {
			got = append(got, ev.EventID)
			e := byID[ev.EventID]
			require.Equal(t, []string{"page_url"}, keys(ev.Context))
			wantProps := []string{}
			if _, ok := e.Properties["error"]; ok {
				wantProps = []string{"error"}
			}
			require.Equal(t, wantProps, keys(ev.Properties), ev.EventID)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got)
}

// checkGA4 counts GA4's events (it has no event ids) and checks only allowed params arrive.
func checkGA4(t *testing.T, s *standin.Server, want int) {
	allowed := []string{"page_url", "order_value", "currency", "session_id", "engagement_time_msec"}
	got := 0
	for _, r := range s.Requests() {
		require.Equal(t, "/mp/collect", r.Path)
		var body struct {
			Events []struct {
				Params map[string]any `json:"params"`
			} `json:"events"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		for _, ev := range body.Events {
			got++
			for k := range ev.Params {
				require.Contains(t, allowed, k, "ga4 got a param not on its field list")
			}
		}
	}
	require.Equal(t, want, got)
}

// checkNoRawEmail searches every place data leaves the raw topic for the raw email addresses.
func checkNoRawEmail(t *testing.T, p *pipeline, events []sample.Event) {
	var haystacks []string
	for _, s := range []*standin.Server{p.ga4, p.meta, p.ops} {
		for _, r := range s.Requests() {
			haystacks = append(haystacks, string(r.Body), r.Query.Encode())
		}
	}
	haystacks = append(haystacks, p.logs.String())
	for _, table := range []string{"decisions", "deliveries", "decisions_by_user"} {
		haystacks = append(haystacks, chQuery(t, p, "SELECT * FROM "+p.db+"."+table+" FORMAT TSV"))
	}
	for _, e := range events {
		email := strings.TrimSpace(e.Properties["email"].(string))
		for _, h := range haystacks {
			lower := strings.ToLower(h)
			require.NotContains(t, lower, strings.ToLower(email))
			require.NotContains(t, lower, strings.ToLower(url.QueryEscape(email)))
		}
	}
	require.NotEmpty(t, p.logs.lines())
}

func chQuery(t *testing.T, p *pipeline, q string) string {
	resp, err := http.Post("http://"+testenv.ClickHouseHTTP()+"/", "text/plain", strings.NewReader(q))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

func keys[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
