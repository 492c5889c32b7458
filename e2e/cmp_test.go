package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/constants"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/signals"
)

// cmpCase is one user of TestCMPSignalsToVendors and everything expected of their event.
type cmpCase struct {
	decisions map[string]string // destination → outcome/reason/consent_source
	proof     string            // decisions.consent_proof
	ga4       string            // GA4's consent block: "ad_user_data/ad_personalization", "" if not forwarded
	meta      string            // Meta's data_processing_options[ country state], "" if not forwarded
}

// TestCMPSignalsToVendors: users whose only signal comes from a CMP — a TC string granting or
// refusing, a GPP string with SaleOptOut=1 for a US-CA user, Consent Mode as an object and as
// Google tags' gcs/gcd URL parameters, and RudderStack's Node SDK sending consentManagement — get
// the decisions docs/consent.md gives (consent_source and consent_proof read back from
// ClickHouse), and every forwarded event reaches GA4 and Meta with the vendor consent fields of
// docs/vendors.md ("Consent fields"): GA4's consent block, Meta's data_processing_options (the
// destination says ldu: auto).
func TestCMPSignalsToVendors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	dir := npmCI(t, "sdk")
	p := startPipelineWithPolicy(t, func(pol string) string {
		pol = strings.Replace(pol, "    sale: true\n", "    sale: true\n    ldu: auto\n", 1)
		return pol + "  cmp_ids:\n    C0002: analytics\n    C0004: marketing\n"
	})
	saleOptOut, err := gpp.Encode([]gpp.Section{uspca.USPCA{SectionID: constants.SectionUSPCA,
		CoreSegment: uspca.USPCACoreSegment{Version: 1, SaleOptOutNotice: 1, SaleOptOut: 1, SharingOptOut: 2,
			SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2)},
		GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1}}})
	require.NoError(t, err)

	run := time.Now().Format("150405.000")
	id := func(name string) string { return name + "-" + run }
	ev := func(name, jurisdiction string, sig map[string]any) map[string]any {
		e := map[string]any{"event_id": id(name), "event": "purchase", "user_id": id(name), "jurisdiction": jurisdiction,
			"context":    map[string]any{"page_url": "https://shop.example/", "user_agent": "t"},
			"properties": map[string]any{"order_value": 5.0, "currency": "EUR"}}
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

	cmd := exec.Command("node", "cmp.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TG_HOST="+p.ingestURL, "TG_WRITE_KEY="+writeKey, "RUN="+run)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node cmp.mjs: %s", stderr.String())
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for ; sc.Scan(); n++ {
		require.Contains(t, sc.Text(), `"messageId":"cm-`)
	}
	require.Equal(t, 3, n, "three consentManagement users; output:\n%s", out)

	ops := "forwarded/necessary/"
	want := map[string]cmpCase{
		"tc-yes": {decisions: map[string]string{"ga4": "forwarded/consented/tcf", "meta": "forwarded/consented/tcf", "ops": ops},
			proof: signals.Proof(tcAll, ""), ga4: "GRANTED/GRANTED", meta: "[]"},
		"tc-no": {decisions: map[string]string{"ga4": "blocked/no_consent/tcf", "meta": "blocked/no_consent/tcf", "ops": ops},
			proof: signals.Proof(tcNothing, "")},
		"gpp-out": {decisions: map[string]string{"ga4": "forwarded/consented/", "meta": "blocked/opted_out/gpp", "ops": ops},
			proof: signals.Proof("", saleOptOut), ga4: "DENIED/DENIED"},
		"ca-nochoice": {decisions: map[string]string{"ga4": "forwarded/consented/", "meta": "forwarded/consented/", "ops": ops},
			ga4: "GRANTED/GRANTED", meta: `["LDU"] 1 1000`},
		"gcm-obj": {decisions: map[string]string{"ga4": "forwarded/consented/gcm", "meta": "forwarded/consented/gcm", "ops": ops},
			ga4: "GRANTED/DENIED", meta: "[]"},
		"gcm-url": {decisions: map[string]string{"ga4": "forwarded/consented/gcm", "meta": "forwarded/consented/gcm", "ops": ops},
			ga4: "GRANTED/DENIED", meta: "[]"},
		"cm-analytics-only": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "blocked/no_consent/cmp_ids", "ops": ops},
			ga4: "DENIED/DENIED"},
		"cm-all": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "forwarded/consented/cmp_ids", "ops": ops},
			ga4: "GRANTED/GRANTED", meta: "[]"},
		"cm-no-denied-list": {decisions: map[string]string{"ga4": "forwarded/consented/cmp_ids", "meta": "blocked/no_consent/cmp_ids", "ops": ops},
			ga4: "DENIED/DENIED"},
	}

	waitDecisions(t, p, "run_id = '' AND event_id LIKE '%-"+run+"'", 3*len(want))
	gotDecisions, gotProofs := cmpDecisions(t, p, run)
	gotGA4, gotMeta := vendorConsentBodies(t, p, run, want)
	for name, w := range want {
		require.Equal(t, w.decisions, gotDecisions[name], "%s: decisions", name)
		require.Equal(t, w.proof, gotProofs[name], "%s: consent_proof", name)
		require.Equal(t, w.ga4, gotGA4[name], "%s: GA4 consent block", name)
		require.Equal(t, w.meta, gotMeta[name], "%s: Meta data_processing_options", name)
	}
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

// vendorConsentBodies waits until GA4 and Meta received every event the cases expect them to,
// and returns, by user name, GA4's consent block and Meta's data_processing_options fields as
// received. A vendor receiving an event twice, or one it should not, fails the comparison.
func vendorConsentBodies(t *testing.T, p *pipeline, run string, want map[string]cmpCase) (ga4, meta map[string]string) {
	t.Helper()
	wantGA4, wantMeta := 0, 0
	for _, w := range want {
		if w.ga4 != "" {
			wantGA4++
		}
		if w.meta != "" {
			wantMeta++
		}
	}
	require.Eventually(t, func() bool {
		ga4, meta = readGA4Consent(t, p, run), readMetaDPO(t, p, run)
		return len(ga4) >= wantGA4 && len(meta) >= wantMeta
	}, 60*time.Second, 100*time.Millisecond, "vendors never received every forwarded event; logs:\n%s", p.logs)
	return ga4, meta
}

func readGA4Consent(t *testing.T, p *pipeline, run string) map[string]string {
	out := map[string]string{}
	for _, r := range p.ga4.Requests() {
		var b struct {
			ClientID string            `json:"client_id"`
			Consent  map[string]string `json:"consent"`
			Events   []json.RawMessage `json:"events"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &b))
		name, ok := strings.CutSuffix(b.ClientID, "-"+run)
		if !ok || !r.Accepted {
			continue
		}
		require.Len(t, b.Events, 1, "one event per user in this test")
		require.NotContains(t, out, name, "GA4 received %s twice", name)
		out[name] = b.Consent["ad_user_data"] + "/" + b.Consent["ad_personalization"]
	}
	return out
}

func readMetaDPO(t *testing.T, p *pipeline, run string) map[string]string {
	out := map[string]string{}
	for _, r := range p.meta.Requests() {
		var b struct {
			Data []map[string]json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &b))
		for _, e := range b.Data {
			var id string
			require.NoError(t, json.Unmarshal(e["event_id"], &id))
			name, ok := strings.CutSuffix(id, "-"+run)
			if !ok || !r.Accepted {
				continue
			}
			require.NotContains(t, out, name, "Meta received %s twice", name)
			v := string(e["data_processing_options"])
			for _, k := range []string{"data_processing_options_country", "data_processing_options_state"} {
				if x, ok := e[k]; ok {
					v += " " + string(x)
				}
			}
			out[name] = v
		}
	}
	return out
}
