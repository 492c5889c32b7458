package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/report"
)

// Raw values the report events carry; neither output may contain them in any form.
const (
	reportEmail = "Ann.Report@Example.com "
	reportPhone = "+44 7700 900123"
)

var rawMarkers = []string{"ann.report", "Ann.Report", "example.com", "Example.com", "7700", "447700900123", "900123"}

func reportEvents(user, tag string, from, n int) []sample.Event {
	out := make([]sample.Event, n)
	for i := range out {
		out[i] = sample.Event{
			EventID: fmt.Sprintf("rep-%s-%d", tag, from+i), Event: "purchase", UserID: user, Jurisdiction: "EU",
			Timestamp: time.Now().UTC().Format(time.RFC3339),
			Consent:   map[string]bool{"necessary": true, "analytics": true, "marketing": true},
			Context:   map[string]any{"page_url": "https://shop.example/checkout", "ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
			Properties: map[string]any{"order_value": 149.0, "currency": "EUR", "email": reportEmail, "phone": reportPhone,
				"session_id": "s-" + tag},
		}
	}
	return out
}

// TestAccessReportAfterTraffic runs `tollgate run`, sends purchases for three users (one keeps
// consenting, one withdraws marketing, one is erased), then checks `tollgate report access` field
// by field (JSON), renders the HTML in headless Chromium (no request leaves the file), and
// checks that no raw e-mail or phone appears in either. TOLLGATE_UPDATE_SCREENSHOT=1 refreshes
// docs/access-report.png.
func TestAccessReportAfterTraffic(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	p := startPipeline(t)
	users := map[string]string{"c": "u-rep-consented", "w": "u-rep-withdrew", "e": "u-rep-erased"}
	var first []sample.Event
	for tag, u := range users {
		first = append(first, reportEvents(u, tag, 0, 2)...)
	}
	_, err := sample.Send(p.ingestURL, writeKey, first)
	require.NoError(t, err)
	waitDecisions(t, p, "event_id LIKE 'rep-%'", len(first)*3)

	require.NoError(t, sample.Withdraw(p.ingestURL, writeKey, sample.Event{UserID: users["w"]}, "marketing"))
	require.NoError(t, sample.PostJSON(p.ingestURL+"/v1/erase", writeKey, map[string]any{"user_id": users["e"]}, false, nil))
	var second []sample.Event
	for tag, u := range users {
		second = append(second, reportEvents(u, tag, 2, 1)...)
	}
	_, err = sample.Send(p.ingestURL, writeKey, second)
	require.NoError(t, err)

	db := p.openDB()
	count := func(q string) uint64 {
		var n uint64
		if err := db.QueryRow(context.Background(), q).Scan(&n); err != nil {
			return 0
		}
		return n
	}
	// Settled: the later events decided, the erasure carried out, the forwarded events delivered.
	var seen [4]uint64
	require.Eventually(t, func() bool {
		seen = [4]uint64{
			count("SELECT count() FROM " + p.db + ".decisions FINAL WHERE user_key = 'u-rep-erased' AND reason = 'erased'"),
			count("SELECT count() FROM " + p.db + ".decisions FINAL WHERE user_key = 'u-rep-erased' AND reason != 'erased'"),
			count("SELECT count() FROM " + p.db + ".decisions FINAL WHERE user_key IN ('u-rep-consented', 'u-rep-withdrew')"),
			count("SELECT uniqExact(destination, event_id) FROM " + p.db + ".deliveries FINAL WHERE event_id LIKE 'rep-c-%' OR event_id LIKE 'rep-w-%'"),
		}
		return seen == [4]uint64{3, 0, 18, 17}
	}, 90*time.Second, 200*time.Millisecond, "traffic never settled (erased, erased other, decisions, delivered: want 3 0 18 17) %v; logs:\n%s", &seen, p.logs)

	access := func(user string) (report.Access, string) {
		out, errOut, err := p.tollgate("report", "access", "--user", user, "--format", "json")
		require.NoError(t, err, errOut)
		var a report.Access
		require.NoError(t, json.Unmarshal([]byte(out), &a))
		requireNoRawContact(t, out)
		return a, out
	}
	dest := func(a report.Access, name string) report.AccessDestination {
		for _, d := range a.Destinations {
			if d.Name == name {
				return d
			}
		}
		t.Fatalf("no destination %s in the report of %s", name, a.User)
		return report.AccessDestination{}
	}

	c, _ := access(users["c"])
	require.False(t, c.Erased)
	require.Nil(t, c.ErasedAt)
	require.Equal(t, []string{"e2e-1"}, c.PolicyVersions)
	require.Len(t, c.Destinations, 3)
	ga4, meta, ops := dest(c, "ga4"), dest(c, "meta"), dest(c, "ops")
	require.Equal(t, report.AccessDestination{Name: "ga4", Type: "ga4", Purposes: []string{"analytics"}, LegalBasis: "consent",
		FieldsSent:   []string{"context.page_url", "properties.currency", "properties.order_value", "properties.session_id"},
		FieldsHashed: []string{}, First: ga4.First, Last: ga4.Last, EventsSent: 3, BlockedBy: map[string]uint64{},
		Deliveries: map[string]uint64{"delivered": 3}, PolicyVersions: []string{"e2e-1"}}, ga4)
	require.NotNil(t, ga4.First)
	require.False(t, ga4.Last.Before(*ga4.First))
	require.Equal(t, "consent", meta.LegalBasis)
	require.True(t, meta.Sale)
	require.Equal(t, []string{"context.page_url", "context.user_agent", "properties.currency", "properties.email", "properties.order_value", "properties.phone"}, meta.FieldsSent)
	require.Equal(t, []string{"properties.email", "properties.phone"}, meta.FieldsHashed)
	require.Equal(t, uint64(3), meta.EventsSent)
	require.Equal(t, map[string]uint64{"delivered": 3}, meta.Deliveries)
	require.Equal(t, "necessary", ops.LegalBasis)
	require.Equal(t, []string{"context.page_url"}, ops.FieldsSent)
	require.Equal(t, uint64(3), ops.EventsSent)

	w, _ := access(users["w"])
	require.False(t, w.Erased)
	wmeta := dest(w, "meta")
	require.Equal(t, uint64(2), wmeta.EventsSent)
	require.Equal(t, uint64(1), wmeta.EventsBlocked)
	require.Equal(t, map[string]uint64{"withdrawn": 1}, wmeta.BlockedBy)
	require.Equal(t, map[string]uint64{"delivered": 2}, wmeta.Deliveries)
	require.Equal(t, uint64(3), dest(w, "ga4").EventsSent)

	e, _ := access(users["e"])
	require.True(t, e.Erased)
	require.NotNil(t, e.ErasedAt)
	for _, d := range e.Destinations {
		require.Equal(t, uint64(0), d.EventsSent, d.Name)
		require.Equal(t, map[string]uint64{"erased": 1}, d.BlockedBy, d.Name)
		require.Empty(t, d.FieldsSent, d.Name)
		require.Empty(t, d.Deliveries, d.Name)
	}

	// HTML, rendered in Chromium: the withdrawn user's page shows every section.
	chrome := ensureChromium(t)
	html := filepath.Join(t.TempDir(), "access.html")
	_, errOut, err := p.tollgate("report", "access", "--user", users["w"], "--out", html)
	require.NoError(t, err, errOut)
	raw, err := os.ReadFile(html)
	require.NoError(t, err)
	requireNoRawContact(t, string(raw))
	for _, u := range []string{users["c"], users["e"]} {
		out, errOut, err := p.tollgate("report", "access", "--user", u)
		require.NoError(t, err, errOut)
		requireNoRawContact(t, out)
	}

	browser := startBrowser(t, chrome)
	rec := &requestLog{}
	tab, cancel := chromedp.NewContext(browser, chromedp.WithListener(rec.listen))
	defer cancel()
	ctx, stop := context.WithTimeout(tab, 30*time.Second)
	defer stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("file://"+html), chromedp.WaitVisible(chromedp.CSS("h1"))))
	text := evalJS[string](t, ctx, "document.body.innerText")
	for _, want := range []string{"What we shared about you", "u-rep-withdrew", "you withdrew consent: 1", "properties.email", "e-mail address", "page address",
		"Sent as a fingerprint only", "delivered: 2", "not erased"} {
		require.Contains(t, text, want)
	}
	requireNoRawContact(t, text)
	require.Equal(t, 3, evalJS[int](t, ctx, "document.querySelectorAll('section.dest').length"))
	rec.mu.Lock()
	for _, u := range rec.urls {
		require.True(t, strings.HasPrefix(u, "file://"), "the report requested %s", u)
	}
	rec.mu.Unlock()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	_, err = png.DecodeConfig(bytes.NewReader(img))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "access-report.png")
	if os.Getenv("TOLLGATE_UPDATE_SCREENSHOT") == "1" {
		path = filepath.Join("..", "docs", "access-report.png")
	}
	require.NoError(t, os.WriteFile(path, img, 0o644))
	t.Logf("screenshot: %s", path)
}

func requireNoRawContact(t *testing.T, s string) {
	t.Helper()
	for _, m := range rawMarkers {
		require.NotContains(t, s, m)
	}
}
