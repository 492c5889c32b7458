package e2e

import (
	"bytes"
	"context"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// A banner choice in the demo page: the buttons to click and what docs/consent.md then decides for
// each destination of the e2e policy (default jurisdiction, opt_in).
type bannerChoice struct {
	name   string
	gpc    bool     // navigator.globalPrivacyControl is true, as in a GPC browser
	clicks []string // element ids, in order
	want   map[string][2]string
}

var bannerChoices = []bannerChoice{
	{name: "accept all", clicks: []string{"accept-all"}, want: map[string][2]string{
		"ga4": {"forwarded", "consented"}, "meta": {"forwarded", "consented"}, "ops": {"forwarded", "necessary"}}},
	{name: "reject all", clicks: []string{"reject-all"}, want: map[string][2]string{
		"ga4": {"blocked", "no_consent"}, "meta": {"blocked", "no_consent"}, "ops": {"forwarded", "necessary"}}},
	{name: "customise: analytics only", clicks: []string{"customise", "cat-analytics", "save"}, want: map[string][2]string{
		"ga4": {"forwarded", "consented"}, "meta": {"blocked", "no_consent"}, "ops": {"forwarded", "necessary"}}},
	{name: "accept all with GPC", gpc: true, clicks: []string{"accept-all"}, want: map[string][2]string{
		"ga4": {"forwarded", "consented"}, "meta": {"blocked", "gpc"}, "ops": {"forwarded", "necessary"}}},
}

// TestDemoPageInChromium loads the demo page, served by ingest, in headless Chromium once per
// banner choice: the page view waits in tg.js's queue until the choice, then the page view and a
// purchase go to ingest, and to no other host. ClickHouse must then hold the decisions §5 gives
// for that choice. The same page then runs with a site's CMP in place of the banner
// (browser_cmp_test.go). Set TOLLGATE_UPDATE_SCREENSHOT=1 to refresh docs/demo-banner.png.
func TestDemoPageInChromium(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	chrome := ensureChromium(t)
	p := startPipelineWithPolicy(t, withOneTrustIDs, "TOLLGATE_INGEST_DEMO_PAGE=true")
	origin, err := url.Parse(p.ingestURL)
	require.NoError(t, err)

	browser := startBrowser(t, chrome)
	users := map[string]string{} // choice name -> tg.js anonymous id
	for i, c := range bannerChoices {
		rec := &requestLog{}
		tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(rec.listen))
		require.NoError(t, chromedp.Do(tab)) // attach the tab
		if c.gpc {
			_, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: `Object.defineProperty(Navigator.prototype, "globalPrivacyControl", {get: () => true});`,
			})
			require.NoError(t, err)
		}
		ctx, stop := context.WithTimeout(tab, 30*time.Second)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(p.ingestURL+"/demo/"),
			chromedp.WaitVisible(chromedp.ID("banner")),
		), c.name)
		require.Equal(t, 1, evalJS[int](t, ctx, "tg.queued()"), "%s: the page view waits for a choice", c.name)
		require.Empty(t, rec.paths("/v1/batch"), "%s: nothing is sent before a choice", c.name)
		if i == 0 {
			saveScreenshot(t, ctx)
		}
		for _, id := range c.clicks {
			require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID(id))), "%s: click #%s", c.name, id)
		}
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("buy"))))
		require.Eventually(t, func() bool {
			return evalJS[string](t, ctx, `document.getElementById("sent").textContent`) == "2"
		}, 15*time.Second, 50*time.Millisecond, "%s: tg.js never sent the page view and the purchase", c.name)
		require.Equal(t, c.gpc, evalJS[bool](t, ctx, `navigator.globalPrivacyControl === true`))
		users[c.name] = evalJS[string](t, ctx, `localStorage.getItem("tg_anon")`)
		// Close the tab only once ingest answered: a request cut short is not stored.
		require.Eventually(t, func() bool { done, _ := rec.answered("/v1/batch"); return done }, 15*time.Second, 50*time.Millisecond,
			"%s: /v1/batch requests never answered", c.name)
		_, status := rec.answered("/v1/batch")
		require.EqualValues(t, 200, status, "%s: /v1/batch status", c.name)
		stop()
		cancel()
		rec.requireFirstParty(t, c.name, origin.Host)
	}
	require.Len(t, uniq(users), len(bannerChoices), "each choice ran as its own visitor")
	for _, c := range bannerChoices {
		checkBannerDecisions(t, p, c, users[c.name])
	}
	checkCMPPages(t, p, browser, origin.Host)
}

// checkBannerDecisions waits for the visitor's 2 events × 3 destinations in ClickHouse and
// compares them with the choice's expectation.
func checkBannerDecisions(t *testing.T, p *pipeline, c bannerChoice, user string) {
	t.Helper()
	db := p.openDB()
	ctx := context.Background()
	q := "SELECT event_name, destination, outcome, reason, gpc FROM " + p.db + ".decisions FINAL WHERE run_id = '' AND user_key = ?"
	var got map[string][2]string
	var gpcs []uint8
	require.Eventually(t, func() bool {
		rows, err := db.Query(ctx, q, user)
		if err != nil {
			return false
		}
		defer rows.Close()
		got, gpcs = map[string][2]string{}, nil
		for rows.Next() {
			var event, dest, outcome, reason string
			var gpc uint8
			if rows.Scan(&event, &dest, &outcome, &reason, &gpc) != nil {
				return false
			}
			got[event+"/"+dest] = [2]string{outcome, reason}
			gpcs = append(gpcs, gpc)
		}
		return rows.Err() == nil && len(got) == 6
	}, 60*time.Second, 200*time.Millisecond, "%s: decisions for %s never reached 6 (have %v); logs:\n%s", c.name, user, got, p.logs)
	want := map[string][2]string{}
	for _, event := range []string{"page", "purchase"} {
		for dest, d := range c.want {
			want[event+"/"+dest] = d
		}
	}
	require.Equal(t, want, got, "%s: decisions in ClickHouse", c.name)
	wantGPC := uint8(0)
	if c.gpc {
		wantGPC = 1
	}
	for _, g := range gpcs {
		require.Equal(t, wantGPC, g, "%s: decisions.gpc", c.name)
	}
}

// requestLog records every request a tab makes, and every request the browser refused to make.
type requestLog struct {
	mu      sync.Mutex
	urls    []string
	blocked []string
	status  map[string]int64 // URL path -> HTTP status of its last response
	answers map[string]int   // URL path -> responses received
}

func (r *requestLog) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r.urls = append(r.urls, ev.Request.URL)
	case *network.EventResponseReceived:
		if pu, err := url.Parse(ev.Response.URL); err == nil {
			if r.status == nil {
				r.status, r.answers = map[string]int64{}, map[string]int{}
			}
			r.status[pu.Path] = ev.Response.Status
			r.answers[pu.Path]++
		}
	case *network.EventLoadingFailed:
		if ev.BlockedReason != "" {
			r.blocked = append(r.blocked, string(ev.BlockedReason))
		}
	}
}

// answered reports whether every request to path got a response, and the last status.
func (r *requestLog) answered(path string) (bool, int64) {
	n := len(r.paths(path))
	r.mu.Lock()
	defer r.mu.Unlock()
	return n > 0 && r.answers[path] >= n, r.status[path]
}

func (r *requestLog) paths(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.urls {
		if pu, err := url.Parse(u); err == nil && pu.Path == path {
			out = append(out, u)
		}
	}
	return out
}

// requireFirstParty fails if the tab asked for anything but the ingest origin, or tried to and
// was stopped (by the page's Content-Security-Policy, say).
func (r *requestLog) requireFirstParty(t *testing.T, name, host string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.urls, name)
	for _, u := range r.urls {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		require.Equal(t, "http", pu.Scheme, "%s: request to %s", name, u)
		require.Equal(t, host, pu.Host, "%s: request to a host other than the first party: %s", name, u)
	}
	require.Empty(t, r.blocked, "%s: the page tried requests the browser blocked", name)
}

// startBrowser starts headless Chromium for the test and returns its context.
func startBrowser(t *testing.T, chrome string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // tests may run as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		// No traffic of the browser's own (updates, field trials) on this closed network.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-proxy-server", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium at %s", chrome)
	return ctx
}

// ensureChromium returns Chromium's path, installing Debian's package first when it is missing.
func ensureChromium(t *testing.T) string {
	t.Helper()
	installMu.Lock() // scenarios run in parallel: one installs, the others then find it
	defer installMu.Unlock()
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	out, err := exec.Command("bash", "browser/install-chromium.sh").CombinedOutput()
	require.NoError(t, err, "install chromium:\n%s", out)
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is still missing after browser/install-chromium.sh")
	return path
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// saveScreenshot captures the page with its banner. It goes to docs/demo-banner.png when
// TOLLGATE_UPDATE_SCREENSHOT=1, else to the test's temp folder (a test run leaves the tree clean).
func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	require.NoError(t, err)
	require.Equal(t, 1280, cfg.Width)
	path := filepath.Join(t.TempDir(), "demo-banner.png")
	if os.Getenv("TOLLGATE_UPDATE_SCREENSHOT") == "1" {
		path = filepath.Join("..", "docs", "demo-banner.png")
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	}
	require.NoError(t, os.WriteFile(path, img, 0o644))
	t.Logf("screenshot: %s", path)
}

func uniq(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range m {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
