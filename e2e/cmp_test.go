package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

// cmpCase is one user of TestCMPSignalsToVendors and everything expected of their event.
type cmpCase struct {
	decisions map[string]string // destination → outcome/reason/consent_source
	proof     string            // decisions.consent_proof
	ga4       string            // GA4's consent block: "ad_user_data/ad_personalization", "" if not forwarded
	meta      string            // Meta's data_processing_options[ country state], "" if not forwarded
	tiktok    string            // TikTok's limited_data_use, "" if not forwarded
	gads      string            // Google Ads' consent: "adUserData/adPersonalization", "" if not forwarded
}

// cmpPolicy adds to the e2e policy: ldu: auto for Meta, a TikTok destination (not a sale one,
// so that a sale opt-out still reaches it, flagged), a Google Ads one, and OneTrust-style ids.
const cmpPolicy = `  tiktok:
    type: tiktok
    purpose: marketing
    fields: [context.page_url, context.user_agent, properties.order_value, properties.currency]
    config: {endpoint: %q, pixel_code: "CPIXEL1", access_token_env: TT_TOKEN, allow_private_network: true}
  gads:
    type: google_ads
    purpose: marketing
    fields: [properties.order_value, properties.currency, properties.gclid]
    config: {endpoint: %q, access_token_env: GADS_TOKEN, customer_id: "1234567890", conversion_action_id: "555", allow_private_network: true}
segment_categories:`

// TestCMPSignalsToVendors: users whose only signal comes from a CMP — a TC string granting or
// refusing, a GPP string with SaleOptOut=1 for a US-CA user, Consent Mode as an object and as
// Google tags' gcs/gcd URL parameters, and RudderStack's Node SDK sending consentManagement — get
// the decisions docs/consent.md gives (consent_source and consent_proof read back from
// ClickHouse), and every forwarded event reaches GA4 and Meta with the vendor consent fields of
// docs/vendors.md ("Consent fields"): GA4's consent block, Meta's data_processing_options (the
// destination says ldu: auto).
func TestCMPSignalsToVendors(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	dir := npmCI(t, "sdk")
	tiktok, gads := standin.New("tiktok"), standin.New("google_ads")
	t.Cleanup(func() { tiktok.Close(); gads.Close() })
	p := startPipelineWithPolicy(t, func(pol string) string {
		pol = strings.Replace(pol, "    sale: true\n", "    sale: true\n    ldu: auto\n", 1)
		pol = strings.Replace(pol, "segment_categories:", fmt.Sprintf(cmpPolicy, tiktok.URL, gads.URL), 1)
		return pol + "  cmp_ids:\n    C0002: analytics\n    C0004: marketing\n"
	}, "TT_TOKEN=tt-token", "GADS_TOKEN=gads-token")
	saleOptOut := gppSaleOptOut(t)

	run := time.Now().Format("150405.000")
	gppRun := run + "g" // the GPP sections' events: apart from the cases below (vendor bodies count by run)
	sections := postEveryGPPSection(t, p, dir, gppRun)
	id := func(name string) string { return name + "-" + run }
	ev := func(name, jurisdiction string, sig map[string]any) map[string]any {
		e := map[string]any{"event_id": id(name), "event": "purchase", "user_id": id(name), "jurisdiction": jurisdiction,
			"context":    map[string]any{"page_url": "https://shop.example/", "user_agent": "t"},
			"properties": map[string]any{"order_value": 5.0, "currency": "EUR", "gclid": "Cj0-" + name}}
		if sig != nil {
			e["consent_signals"] = sig
		}
		return e
	}
	require.NoError(t, postExpect(p.ingestURL+"/v1/events", map[string]any{"batch": []map[string]any{
		ev("tc-yes", "EU", map[string]any{"tcf": tcAll}),
		ev("tc-no", "EU", map[string]any{"tcf": tcNothing}),
		ev("gpp-out", "US-CA", map[string]any{"gpp": saleOptOut, "gpp_sid": []int{8}}),
		ev("ca-nochoice", "US-CA", nil),
		ev("gcm-obj", "EU", map[string]any{"gcm": map[string]string{"analytics_storage": "granted", "ad_storage": "granted",
			"ad_user_data": "granted", "ad_personalization": "denied"}}),
	}}, 202, `"accepted":5`))
	// Google tags' parameters on the request: ad_storage and analytics granted (gcs), ad_user_data
	// granted by update (r), ad_personalization denied by default (p).
	require.NoError(t, postExpect(p.ingestURL+"/v1/events?gcs=G111&gcd=11t1t1r1p5", ev("gcm-url", "EU", nil), 202, ""))

	out := runNode(t, dir, "cmp.mjs", p.ingestURL, run, p.logs)
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for ; sc.Scan(); n++ {
		require.Contains(t, sc.Text(), `"messageId":"cm-`)
	}
	require.Equal(t, 3, n, "three consentManagement users; output:\n%s", out)

	ops := "forwarded/necessary/"
	want := map[string]cmpCase{
		"tc-yes": {decisions: map[string]string{"ga4": "forwarded/consented/tcf", "meta": "forwarded/consented/tcf", "ops": ops,
			"tiktok": "forwarded/consented/tcf", "gads": "forwarded/consented/tcf"},
			proof: signals.Proof(tcAll, ""), ga4: "GRANTED/GRANTED", meta: "[]", tiktok: "false", gads: "CONSENT_GRANTED/CONSENT_GRANTED"},
		"tc-no": {decisions: map[string]string{"ga4": "blocked/no_consent/tcf", "meta": "blocked/no_consent/tcf", "ops": ops,
			"tiktok": "blocked/no_consent/tcf", "gads": "blocked/no_consent/tcf"},
			proof: signals.Proof(tcNothing, "")},
		"gpp-out": {decisions: map[string]string{"ga4": "forwarded/consented/", "meta": "blocked/opted_out/gpp", "ops": ops,
			"tiktok": "forwarded/consented/", "gads": "forwarded/consented/"},
			proof: signals.Proof("", saleOptOut), ga4: "DENIED/DENIED", tiktok: "true", gads: "CONSENT_DENIED/CONSENT_DENIED"},
		"ca-nochoice": {decisions: map[string]string{"ga4": "forwarded/consented/", "meta": "forwarded/consented/", "ops": ops,
			"tiktok": "forwarded/consented/", "gads": "forwarded/consented/"},
			ga4: "GRANTED/GRANTED", meta: `["LDU"] 1 1000`, tiktok: "true", gads: "CONSENT_GRANTED/CONSENT_GRANTED"},
		"gcm-obj": {decisions: map[string]string{"ga4": "forwarded/consented/gcm", "meta": "forwarded/consented/gcm", "ops": ops,
			"tiktok": "forwarded/consented/gcm", "gads": "forwarded/consented/gcm"},
			ga4: "GRANTED/DENIED", meta: "[]", tiktok: "false", gads: "CONSENT_GRANTED/CONSENT_DENIED"},
		"gcm-url": {decisions: map[string]string{"ga4": "forwarded/consented/gcm", "meta": "forwarded/consented/gcm", "ops": ops,
			"tiktok": "forwarded/consented/gcm", "gads": "forwarded/consented/gcm"},
			ga4: "GRANTED/DENIED", meta: "[]", tiktok: "false", gads: "CONSENT_GRANTED/CONSENT_DENIED"},
		"cm-analytics-only": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "blocked/no_consent/cmp_ids", "ops": ops,
			"tiktok": "blocked/no_consent/cmp_ids", "gads": "blocked/no_consent/cmp_ids"},
			ga4: "DENIED/DENIED"},
		"cm-all": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "forwarded/consented/cmp_ids", "ops": ops,
			"tiktok": "forwarded/consented/cmp_ids", "gads": "forwarded/consented/cmp_ids"},
			ga4: "GRANTED/GRANTED", meta: "[]", tiktok: "false", gads: "CONSENT_GRANTED/CONSENT_GRANTED"},
		"cm-no-denied-list": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "blocked/no_consent/cmp_ids", "ops": ops,
			"tiktok": "blocked/no_consent/cmp_ids", "gads": "blocked/no_consent/cmp_ids"},
			ga4: "DENIED/DENIED"},
	}

	waitDecisions(t, p, "run_id = '' AND event_id LIKE '%-"+run+"'", 5*len(want))
	gotDecisions, gotProofs := cmpDecisions(t, p, run)
	got := vendorConsentBodies(t, p, run, want, tiktok, gads)
	for name, w := range want {
		require.Equal(t, w.decisions, gotDecisions[name], "%s: decisions", name)
		require.Equal(t, w.proof, gotProofs[name], "%s: consent_proof", name)
		require.Equal(t, w.ga4, got[0][name], "%s: GA4 consent block", name)
		require.Equal(t, w.meta, got[1][name], "%s: Meta data_processing_options", name)
		require.Equal(t, w.tiktok, got[2][name], "%s: TikTok limited_data_use", name)
		require.Equal(t, w.gads, got[3][name], "%s: Google Ads consent", name)
	}
	checkEveryGPPSection(t, p, gppRun, sections)
}

// cmpDecisions reads the run's decisions from ClickHouse: by user name, destination →
// outcome/reason/consent_source, and the consent_proof.
func cmpDecisions(t *testing.T, p *pipeline, run string) (map[string]map[string]string, map[string]string) {
	t.Helper()
	rows, err := p.openDB().Query(context.Background(), "SELECT event_id, destination, outcome, reason, consent_source, consent_proof FROM "+
		p.db+".decisions FINAL WHERE run_id = '' AND event_id LIKE '%-"+run+"'")
	require.NoError(t, err)
	defer rows.Close()
	got, proofs := map[string]map[string]string{}, map[string]string{}
	for rows.Next() {
		var id, dest, outcome, reason, source, proof string
		require.NoError(t, rows.Scan(&id, &dest, &outcome, &reason, &source, &proof))
		name := strings.TrimSuffix(id, "-"+run)
		if got[name] == nil {
			got[name] = map[string]string{}
		}
		got[name][dest] = outcome + "/" + reason + "/" + source
		proofs[name] = proof
	}
	require.NoError(t, rows.Err())
	return got, proofs
}

// vendorConsentBodies waits until every vendor received every event the cases expect it to, and
// returns, by user name, what each received: GA4's consent block, Meta's data_processing_options
// fields, TikTok's limited_data_use, Google Ads' consent. A vendor receiving an event twice fails.
func vendorConsentBodies(t *testing.T, p *pipeline, run string, want map[string]cmpCase, tiktok, gads *standin.Server) [4]map[string]string {
	t.Helper()
	var wantN [4]int
	for _, w := range want {
		for i, v := range []string{w.ga4, w.meta, w.tiktok, w.gads} {
			if v != "" {
				wantN[i]++
			}
		}
	}
	var got [4]map[string]string
	require.Eventually(t, func() bool {
		got = [4]map[string]string{
			readBodies(t, p.ga4, run, ga4Consent), readBodies(t, p.meta, run, metaDPO),
			readBodies(t, tiktok, run, tiktokLDU), readBodies(t, gads, run, gadsConsent),
		}
		for i := range got {
			if len(got[i]) < wantN[i] {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "vendors never received every forwarded event; logs:\n%s", p.logs)
	return got
}

// readBodies reads a stand-in's accepted requests with read, which returns each event's id and
// consent fields; events of other runs are skipped.
func readBodies(t *testing.T, s *standin.Server, run string, read func(body []byte) (map[string]string, error)) map[string]string {
	out := map[string]string{}
	for _, r := range s.Requests() {
		if !r.Accepted {
			continue
		}
		events, err := read(r.Body)
		require.NoError(t, err)
		for id, v := range events {
			name, ok := strings.CutSuffix(id, "-"+run)
			if !ok {
				continue
			}
			require.NotContains(t, out, name, "%s received %s twice", s.Kind, name)
			out[name] = v
		}
	}
	return out
}

// ga4Consent: GA4 bodies carry one client (here: one user, one event) and one consent block.
func ga4Consent(body []byte) (map[string]string, error) {
	var b struct {
		ClientID string            `json:"client_id"`
		Consent  map[string]string `json:"consent"`
	}
	err := json.Unmarshal(body, &b)
	return map[string]string{b.ClientID: b.Consent["ad_user_data"] + "/" + b.Consent["ad_personalization"]}, err
}

// metaDPO: each Meta event's data_processing_options, with its country and state when sent.
func metaDPO(body []byte) (map[string]string, error) {
	return dataEvents(body, func(e map[string]json.RawMessage) string {
		v := string(e["data_processing_options"])
		for _, k := range []string{"data_processing_options_country", "data_processing_options_state"} {
			if x, ok := e[k]; ok {
				v += " " + string(x)
			}
		}
		return v
	})
}

func tiktokLDU(body []byte) (map[string]string, error) {
	return dataEvents(body, func(e map[string]json.RawMessage) string { return string(e["limited_data_use"]) })
}

// dataEvents reads the events of a Meta or TikTok body (both: {"data": [{"event_id": ...}]}),
// by event id.
func dataEvents(body []byte, value func(e map[string]json.RawMessage) string) (map[string]string, error) {
	var b struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	out := map[string]string{}
	err := json.Unmarshal(body, &b)
	for _, e := range b.Data {
		var id string
		_ = json.Unmarshal(e["event_id"], &id)
		out[id] = value(e)
	}
	return out, err
}

// gadsConsent: without an order id, Google Ads' transactionId is the event id.
func gadsConsent(body []byte) (map[string]string, error) {
	var b struct {
		Events []struct {
			TransactionID string            `json:"transactionId"`
			Consent       map[string]string `json:"consent"`
		} `json:"events"`
	}
	out := map[string]string{}
	err := json.Unmarshal(body, &b)
	for _, e := range b.Events {
		out[e.TransactionID] = e.Consent["adUserData"] + "/" + e.Consent["adPersonalization"]
	}
	return out, err
}

// iabVectors runs e2e/sdk/iabvectors.mjs: GPP and TC strings written by IAB's own encoders
// (@iabgpp/cmpapi, @iabtcf/core; e2e/sdk/package-lock.json), as JSON.
func iabVectors(t *testing.T, dir string) []byte {
	t.Helper()
	cmd := exec.Command("node", "iabvectors.mjs")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node iabvectors.mjs: %s", stderr.String())
	return out
}

// TestIABVectorsAreIABs: internal/signals/testdata/iab_vectors.json, which the decoders' unit
// tests read, is exactly what IAB's encoders write today (the script's output).
func TestIABVectorsAreIABs(t *testing.T) {
	t.Parallel()
	out := iabVectors(t, npmCI(t, "sdk"))
	want, err := os.ReadFile("../internal/signals/testdata/iab_vectors.json")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, out), "internal/signals/testdata/iab_vectors.json is not iabvectors.mjs's output; "+
		"regenerate it: (cd e2e/sdk && node iabvectors.mjs > ../../internal/signals/testdata/iab_vectors.json)")
}

// gppSectionEvent is one event of postEveryGPPSection: its name and Meta's expected decision.
type gppSectionEvent struct{ name, meta string }

// postEveryGPPSection sends, in one batch, a US-CA event per US GPP section (6–27, the national
// section in versions 1 and 2) with a string saying "did not opt out" and one saying "opted
// out" of sale, written by IAB's encoder, plus one naming section 28, which IAB has not defined;
// every one is accepted. Malformed strings are refused with the path of the offending member,
// alone (400) and by index in a batch.
func postEveryGPPSection(t *testing.T, p *pipeline, dir, run string) []gppSectionEvent {
	t.Helper()
	var v struct {
		US []struct {
			ID   int    `json:"id"`
			Tag  string `json:"tag"`
			Kind string `json:"kind"`
			GPP  string `json:"gpp"`
		} `json:"us"`
	}
	require.NoError(t, json.Unmarshal(iabVectors(t, dir), &v))
	ev := func(name string, sig map[string]any) map[string]any {
		return map[string]any{"event_id": name + "-" + run, "event": "purchase", "user_id": name + "-" + run,
			"jurisdiction": "US-CA", "context": map[string]any{"page_url": "https://shop.example/"},
			"properties": map[string]any{"order_value": 5.0, "currency": "USD"}, "consent_signals": sig}
	}
	var batch []map[string]any
	var want []gppSectionEvent
	ids := map[int]bool{}
	for _, vec := range v.US {
		if vec.Kind != "kept" && vec.Kind != "out" {
			continue
		}
		name := fmt.Sprintf("gpp-%s-%s-%d", strings.ReplaceAll(vec.Tag, " ", ""), vec.Kind, len(batch))
		batch = append(batch, ev(name, map[string]any{"gpp": vec.GPP, "gpp_sid": []int{vec.ID}}))
		meta := "forwarded/consented/gpp"
		if vec.Kind == "out" {
			meta = "blocked/opted_out/gpp"
		}
		want = append(want, gppSectionEvent{name, meta})
		ids[vec.ID] = true
	}
	for id := 6; id <= 27; id++ {
		require.True(t, ids[id], "no IAB string for section %d", id)
	}
	batch = append(batch, ev("gpp-id28", map[string]any{"gpp": "DBABKY~BQSA.AAA"}))
	want = append(want, gppSectionEvent{"gpp-id28", "blocked/opted_out/gpp"})
	require.NoError(t, postExpect(p.ingestURL+"/v1/events", map[string]any{"batch": batch}, 202,
		fmt.Sprintf(`{"accepted":%d,"rejected":[]}`, len(batch))), "every valid string is accepted")

	for _, bad := range []string{"DBABLA", "DBABLA~CEAq", "DBABLA~CEAqAAAAAABA.Q%", "DBABMA~CQuzncAQ", "DBABDA~BQu08x6"} {
		require.NoError(t, postExpect(p.ingestURL+"/v1/events", ev("gpp-bad", map[string]any{"gpp": bad}), 400,
			`consent_signals.gpp`), "%q", bad)
	}
	require.NoError(t, postExpect(p.ingestURL+"/v1/events", map[string]any{"batch": []map[string]any{
		ev("gpp-bad-batch", map[string]any{"gpp": "DBABLA~CEAq"}),
		ev("gpp-ok-batch", map[string]any{"gpp": "DBABLA~CEAqAAAAAABA.QA"}),
		ev("gpp-bad-batch", map[string]any{"gpp": "DBABLA~CEAqAAAAAABA.QA", "gpp_sid": []int{0}}),
	}}, 202, `{"accepted":1,"rejected":[{"index":0,"error":"event 0: field \"consent_signals.gpp\" section usnat: `))
	return want
}

// checkEveryGPPSection reads Meta's (a sale destination's) decision of each event of
// postEveryGPPSection from ClickHouse: "did not opt out" forwarded, "opted out" blocked.
func checkEveryGPPSection(t *testing.T, p *pipeline, run string, want []gppSectionEvent) {
	t.Helper()
	waitDecisions(t, p, "run_id = '' AND destination = 'meta' AND event_id LIKE '%-"+run+"'", len(want))
	got, _ := cmpDecisions(t, p, run)
	for _, w := range want {
		require.Equal(t, w.meta, got[w.name]["meta"], "%s: Meta's decision", w.name)
	}
}
