package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/signals"
)

// A site that runs its own CMP: the demo page with a CMP installed before any of its scripts
// (as a CMP's loader sits first in <head>). tg.js must read the CMP, hide nothing but its own
// banner, and send the CMP's signals; the decisions must follow them.
type cmpPage struct {
	name    string
	install string // script run at document start: the CMP's globals
	// change runs after the page view was sent and before the purchase: the visitor changes
	// their mind in the CMP ("" for a page view only).
	change      string
	signals     [2]string // tg.signals() as JSON before and after change
	want        map[string][4]string
	waitForPage bool // the CMP never answers: the page view leaves after tg.js's wait
}

// stubTCFGPP is a CMP with the IAB TCF v2.2 and GPP 1.1 APIs whose visitor already chose: it
// answers addEventListener at once (tcloaded / signalStatus ready), and cmpStub.tcf(s) plays a
// new choice in its UI (useractioncomplete).
const stubTCFGPP = `(function () {
  var tc = %q, ping = {gppVersion: "1.1", cmpStatus: "loaded", cmpDisplayStatus: "hidden",
    signalStatus: "ready", supportedAPIs: ["8:uspca"], cmpId: 1, sectionList: [8],
    applicableSections: [8], gppString: %q};
  var listeners = [];
  window.__tcfapi = function (cmd, version, cb) {
    if (cmd !== "addEventListener") return;
    listeners.push(cb);
    cb({tcString: tc, gdprApplies: true, eventStatus: "tcloaded", cmpStatus: "loaded", listenerId: listeners.length}, true);
  };
  window.__gpp = function (cmd, cb) {
    if (cmd === "ping") cb(ping, true);
    if (cmd === "addEventListener") cb({eventName: "signalStatus", listenerId: 1, data: "ready", pingData: ping}, true);
  };
  window.cmpStub = {tcf: function (s) {
    tc = s;
    listeners.forEach(function (cb) {
      cb({tcString: s, gdprApplies: true, eventStatus: "useractioncomplete", cmpStatus: "loaded"}, true);
    });
  }};
})();`

// stubGtagOneTrust is Google's gtag snippet with Consent Mode commands and OneTrust's globals.
const stubGtagOneTrust = `(function () {
  window.dataLayer = window.dataLayer || [];
  window.gtag = function () { dataLayer.push(arguments); };
  gtag("consent", "default", {ad_storage: "denied", analytics_storage: "denied", ad_user_data: "denied",
    ad_personalization: "denied", wait_for_update: 500});
  gtag("consent", "default", {ad_storage: "granted", region: ["US-CA"]});
  gtag("consent", "update", {ad_storage: "granted", analytics_storage: "granted"});
  window.OptanonActiveGroups = ",C0001,C0002,";
  window.OnetrustActiveGroups = ",C0001,C0002,";
  window.OneTrust = {GetDomainData: function () {
    return {Groups: [{CustomGroupId: "C0001"}, {CustomGroupId: "C0002"},
      {CustomGroupId: "C0004", SubGroups: [{CustomGroupId: "C0005"}]}]};
  }};
})();`

// The visitor accepts advertising in both: OneTrust activates C0004, then Consent Mode grants.
const changeGtagOneTrust = `OptanonActiveGroups = OnetrustActiveGroups = ",C0001,C0002,C0004,C0005,";
window.dispatchEvent(new Event("OneTrustGroupsUpdated"));
gtag("consent", "update", {ad_user_data: "granted", ad_personalization: "granted"});`

func cmpPages(t *testing.T) []cmpPage {
	saleOptOut := gppSaleOptOut(t)
	proofAll, proofNothing := signals.Proof(tcAll, saleOptOut), signals.Proof(tcNothing, saleOptOut)
	return []cmpPage{{
		name:    "TCF and GPP CMP",
		install: fmt.Sprintf(stubTCFGPP, tcAll, saleOptOut),
		change:  fmt.Sprintf("cmpStub.tcf(%q)", tcNothing),
		signals: [2]string{
			fmt.Sprintf(`{"tcf":%q,"gpp":%q,"gpp_sid":[8]}`, tcAll, saleOptOut),
			fmt.Sprintf(`{"tcf":%q,"gpp":%q,"gpp_sid":[8]}`, tcNothing, saleOptOut),
		},
		// The page view has every TCF purpose but a US-CA GPP opt-out of sale; the purchase
		// follows the refusal the visitor then gave in the CMP.
		want: map[string][4]string{
			"page/ga4":      {"forwarded", "consented", "tcf", proofAll},
			"page/meta":     {"blocked", "opted_out", "gpp,tcf", proofAll},
			"page/ops":      {"forwarded", "necessary", "", proofAll},
			"purchase/ga4":  {"blocked", "no_consent", "tcf", proofNothing},
			"purchase/meta": {"blocked", "no_consent", "gpp,tcf", proofNothing},
			"purchase/ops":  {"forwarded", "necessary", "", proofNothing},
		},
	}, {
		name:    "gtag Consent Mode and OneTrust",
		install: stubGtagOneTrust,
		change:  changeGtagOneTrust,
		signals: [2]string{
			// The region default's grant is not this visitor's; ad_user_data stays denied.
			`{"gcm":{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"denied","ad_personalization":"denied"},` +
				`"cmp_ids":{"allowed":["C0001","C0002"],"denied":["C0004","C0005"]}}`,
			`{"gcm":{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"},` +
				`"cmp_ids":{"allowed":["C0001","C0002","C0004","C0005"],"denied":[]}}`,
		},
		want: map[string][4]string{
			"page/ga4":      {"forwarded", "consented", "cmp_ids,gcm", ""},
			"page/meta":     {"blocked", "no_consent", "cmp_ids,gcm", ""},
			"page/ops":      {"forwarded", "necessary", "", ""},
			"purchase/ga4":  {"forwarded", "consented", "cmp_ids,gcm", ""},
			"purchase/meta": {"forwarded", "consented", "cmp_ids,gcm", ""},
			"purchase/ops":  {"forwarded", "necessary", "", ""},
		},
	}, {
		// A CMP whose UI is still up: the page view does not wait for it for ever, and leaves
		// with no signal, which is no choice.
		name:        "TCF CMP that has not answered",
		install:     `window.__tcfapi = function (cmd, v, cb) { if (cmd === "addEventListener") cb({eventStatus: "cmpuishown", gdprApplies: true}, true); };`,
		signals:     [2]string{"null"},
		waitForPage: true,
		want: map[string][4]string{
			"page/ga4":  {"blocked", "no_consent", "", ""},
			"page/meta": {"blocked", "no_consent", "", ""},
			"page/ops":  {"forwarded", "necessary", "", ""},
		},
	}}
}

// withOneTrustIDs maps the OneTrust categories of the CMP pages to purposes (the banner choices
// send none, so their decisions do not change).
func withOneTrustIDs(pol string) string {
	return pol + "  cmp_ids:\n    C0002: analytics\n    C0004: marketing\n"
}

// gppSaleOptOut is a GPP string written by IAB's encoder (@iabgpp/cmpapi 3.2.0) whose US-CA
// section opts out of sale (SaleOptOutNotice 1, SaleOptOut 1, SharingOptOut 2, GPC segment).
func gppSaleOptOut(t *testing.T) string { return "DBABBg~BQYAAABA.QA" }

// checkCMPPages runs each CMP page as its own visitor in browser and checks ClickHouse's
// decisions, consent_source and consent_proof for the events tg.js sent.
func checkCMPPages(t *testing.T, p *pipeline, browser context.Context, host string) {
	pages := cmpPages(t)
	users := map[string]string{}
	for _, c := range pages {
		rec := &requestLog{}
		tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(rec.listen))
		require.NoError(t, chromedp.Do(tab))
		_, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: c.install})
		require.NoError(t, err)
		ctx, stop := context.WithTimeout(tab, 30*time.Second)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(p.ingestURL+"/demo/"), chromedp.WaitReady(chromedp.ID("buy"))), c.name)
		sent := func(n string) func() bool {
			return func() bool { return evalJS[string](t, ctx, `document.getElementById("sent").textContent`) == n }
		}
		require.Eventually(t, sent("1"), 15*time.Second, 50*time.Millisecond, "%s: the page view was never sent", c.name)
		require.True(t, evalJS[bool](t, ctx, `document.getElementById("banner").hidden`), "%s: the site's CMP replaces tg.js's banner", c.name)
		require.JSONEq(t, c.signals[0], evalJS[string](t, ctx, "JSON.stringify(tg.signals())"), "%s: signals read from the CMP", c.name)
		if c.change != "" {
			require.True(t, evalJS[bool](t, ctx, c.change+";\ntrue"), c.name)
			require.JSONEq(t, c.signals[1], evalJS[string](t, ctx, "JSON.stringify(tg.signals())"), "%s: signals after the change", c.name)
			require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("buy"))))
			require.Eventually(t, sent("2"), 15*time.Second, 50*time.Millisecond, "%s: the purchase was never sent", c.name)
		}
		users[c.name] = evalJS[string](t, ctx, `localStorage.getItem("tg_anon")`)
		require.Eventually(t, func() bool { done, _ := rec.answered("/v1/batch"); return done }, 15*time.Second, 50*time.Millisecond,
			"%s: /v1/batch requests never answered", c.name)
		_, status := rec.answered("/v1/batch")
		require.EqualValues(t, 200, status, "%s: /v1/batch status", c.name)
		stop()
		cancel()
		rec.requireFirstParty(t, c.name, host)
	}
	require.Len(t, uniq(users), len(pages), "each CMP page ran as its own visitor")
	for _, c := range pages {
		require.Equal(t, c.want, userDecisions(t, p, users[c.name], len(c.want)), "%s: decisions in ClickHouse", c.name)
	}
}

// userDecisions waits for n decisions of a visitor and returns them by event/destination as
// outcome, reason, consent_source and consent_proof.
func userDecisions(t *testing.T, p *pipeline, user string, n int) map[string][4]string {
	t.Helper()
	db := p.openDB()
	q := "SELECT event_name, destination, outcome, reason, consent_source, consent_proof FROM " + p.db +
		".decisions FINAL WHERE run_id = '' AND user_key = ?"
	var got map[string][4]string
	require.Eventually(t, func() bool {
		rows, err := db.Query(context.Background(), q, user)
		if err != nil {
			return false
		}
		defer rows.Close()
		got = map[string][4]string{}
		for rows.Next() {
			var event, dest string
			var d [4]string
			if rows.Scan(&event, &dest, &d[0], &d[1], &d[2], &d[3]) != nil {
				return false
			}
			got[event+"/"+dest] = d
		}
		return rows.Err() == nil && len(got) >= n
	}, 60*time.Second, 200*time.Millisecond, "decisions for %s never reached %d (have %v); logs:\n%s", user, n, got, p.logs)
	return got
}
