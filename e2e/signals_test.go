package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/signals"
)

// Real TC strings from prebid/go-gdpr's test suite: purposes 1–10 consented, and none.
const (
	tcAll     = "CPAavcCPAavcCAGABCFRBKCsAP_AAH_AAAqIHFNf_X_fb3_j-_59_9t0eY1f9_7_v-0zjgeds-8Nyd_X_L8X5mM7vB36pq4KuR4Eu3LBAQdlHOHcTUmw6IkVqTPsbk2Mr7NKJ7PEinMbe2dYGH9_n9XT_ZKY79_____7__-_____7_f__-__3_vp9V---wOJAIMBAUAgAEMAAQIFCIQAAQhiQAAAABBCIBQJIAEqgAWVwEdoIEACAxAQgQAgBBQgwCAAQAAJKAgBACwQCAAiAQAAgAEAIAAEIAILACQEAAAEAJCAAiACECAgiAAg5DAgIgCCAFABAAAuJDACAMooASBAPGQGAAKAAqACGAEwALgAjgBlgDUAHZAPsA_ACMAFLAK2AbwBMQCbAFogLYAYEAw8BkQDOQGeAM-EQHwAVABWAC4AIYAZAAywBqADZAHYAPwAgABGAClgFPANYAdUA-QCGwEOgIvASIAmwBOwCkQFyAMCAYSAw8Bk4DOQGfCQAYADgBzgN_CQTgAEAALgAoACoAGQAOAAeABAACIAFQAMIAaABqADyAIYAigBMgCqAKwAWAAuABvADmAHoAQ0AiACJgEsAS4AmgBSgC3AGGAMgAZcA1ADVAGyAO8AewA-IB9gH6AQAAjABQQClgFPAL8AYoA1gBtADcAG8AOIAegA-QCGwEOgIqAReAkQBMQCZQE2AJ2AUOApEBYoC2AFyALvAYEAwYBhIDDQGHgMiAZIAycBlwDOQGfANIAadA1gDWQoAEAYQaBIACoAKwAXABDADIAGWANQAbIA7AB-AEAAIKARgApYBT4C0ALSAawA3gB1QD5AIbAQ6Ai8BIgCbAE7AKRAXIAwIBhIDDwGMAMnAZyAzwBnwcAEAA4Bv4qA2ABQAFQAQwAmABcAEcAMsAagA7AB-AEYAKXAWgBaQDeAJBATEAmwBTYC2AFyAMCAYeAyIBnIDPAGfANyHQWQAFwAUABUADIAHAAQAAiABdADAAMYAaABqADwAH0AQwBFACZAFUAVgAsABcADEAGYAN4AcwA9ACGAERAJYAmABNACjAFKALEAW4AwwBkADKAGiANQAbIA3wB3gD2gH2AfoBGACVAFBAKeAWKAtAC0gFzALyAX4AxQBuADiQHTAdQA9ACGwEOgIiAReAkEBIgCbAE7AKHAU0AqwBYsC2ALZAXAAuQBdoC7wGEgMNAYeAxIBjADHgGSAMnAZUAywBlwDOQGfANEgaQBpIDSwGnANYAbGPABAIqAb-QgZgALAAoABkAEQALgAYgBDACYAFUALgAYgAzABvAD0AI4AWIAygBqADfAHfAPsA_ACMAFBAKGAU-AtAC0gF-AMUAdQA9ACQQEiAJsAU0AsUBaMC2ALaAXAAuQBdoDDwGJAMiAZOAzkBngDPgGiANJAaWA4AlAyAAQAAsACgAGQAOAAigBgAGIAPAAiABMACqAFwAMQAZgA2gCGgEQARIAowBSgC3AGEAMoAaoA2QB3gD8AIwAU-AtAC0gGKANwAcQA6gCHQEXgJEATYAsUBbAC7QGHgMiAZOAywBnIDPAGfANIAawA4AmACARUA38pBBAAXABQAFQAMgAcABAACKAGAAYwA0ADUAHkAQwBFACYAFIAKoAWAAuABiADMAHMAQwAiABRgClAFiALcAZQA0QBqgDZAHfAPsA_ACMAFBAKGAVsAuYBeQDaAG4APQAh0BF4CRAE2AJ2AUOApoBWwCxQFsALgAXIAu0BhoDDwGMAMiAZIAycBlwDOQGeAM-gaQBpMDWANZAbGVABAA-Ab-A.YAAAAAAAAAAA"
	tcNothing = "COyiCPlOyiCPlKxMIAENAfCAAAAAAAAAAAAAAAAAAAAA"
)

// TestCMPSignalsEndToEnd: users whose only signal is a TC string (granting, refusing while the
// event's own consent says true), a GPP string with SaleOptOut=1 for a US-CA user, and Consent
// Mode; each decision, consent_source and consent_proof checked in ClickHouse and by `tollgate
// audit user`; a malformed TC string is refused with its path.
func TestCMPSignalsEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	saleOptOut := gppSaleOptOut(t)

	ev := func(id, user, jurisdiction string, consent map[string]bool, sig map[string]any) map[string]any {
		e := map[string]any{"event_id": id, "event": "purchase", "user_id": user, "jurisdiction": jurisdiction,
			"consent_signals": sig, "context": map[string]any{"page_url": "https://shop.example/", "user_agent": "t"},
			"properties": map[string]any{"order_value": 5.0, "currency": "EUR"}}
		if consent != nil {
			e["consent"] = consent
		}
		return e
	}
	batch := []map[string]any{
		ev("sig-tcf-yes", "u-tcf-yes", "EU", nil, map[string]any{"tcf": tcAll}),
		ev("sig-tcf-no", "u-tcf-no", "EU", map[string]bool{"analytics": true, "marketing": true}, map[string]any{"tcf": tcNothing}),
		ev("sig-gpp", "u-gpp", "US-CA", nil, map[string]any{"gpp": saleOptOut, "gpp_sid": []int{8}}),
		ev("sig-gcm", "u-gcm", "EU", nil, map[string]any{"gcm": map[string]string{"analytics_storage": "granted", "ad_storage": "granted", "ad_user_data": "denied"}}),
	}
	require.NoError(t, postExpect(p.ingestURL+"/v1/events", map[string]any{"batch": batch}, 202, ""))
	require.NoError(t, postExpect(p.ingestURL+"/v1/events", ev("sig-bad", "u-bad", "EU", nil, map[string]any{"tcf": "COyiCPlOyiCP"}), 400, `consent_signals.tcf`))

	waitDecisions(t, p, "run_id = '' AND event_id LIKE 'sig-%'", 3*len(batch))
	rows, err := p.openDB().Query(context.Background(), "SELECT event_id, destination, outcome, reason, consent_source, consent_proof FROM "+p.db+
		".decisions FINAL WHERE run_id = '' AND event_id LIKE 'sig-%'")
	require.NoError(t, err)
	defer rows.Close()
	got := map[string]string{}
	proofs := map[string]string{}
	for rows.Next() {
		var id, dest, outcome, reason, source, proof string
		require.NoError(t, rows.Scan(&id, &dest, &outcome, &reason, &source, &proof))
		got[id+"/"+dest] = outcome + "/" + reason + "/" + source
		proofs[id] = proof
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]string{
		"sig-tcf-yes/meta": "forwarded/consented/tcf",
		"sig-tcf-yes/ga4":  "forwarded/consented/tcf",
		"sig-tcf-yes/ops":  "forwarded/necessary/",
		"sig-tcf-no/meta":  "blocked/no_consent/event,tcf",
		"sig-tcf-no/ga4":   "blocked/no_consent/event,tcf",
		"sig-tcf-no/ops":   "forwarded/necessary/",
		"sig-gpp/meta":     "blocked/opted_out/gpp",
		"sig-gpp/ga4":      "forwarded/consented/",
		"sig-gpp/ops":      "forwarded/necessary/",
		"sig-gcm/meta":     "blocked/no_consent/gcm",
		"sig-gcm/ga4":      "forwarded/consented/gcm",
		"sig-gcm/ops":      "forwarded/necessary/",
	}, got)
	require.Equal(t, signals.Proof(tcAll, ""), proofs["sig-tcf-yes"])
	require.Equal(t, signals.Proof("", saleOptOut), proofs["sig-gpp"])
	require.Equal(t, "", proofs["sig-gcm"])

	out, stderr, err := p.tollgate("audit", "user", "--id", "u-tcf-no", "--format", "json")
	require.NoError(t, err, stderr)
	require.Contains(t, out, `"consent_source": "event,tcf"`)
	require.Contains(t, out, `"consent_proof": "`+signals.Proof(tcNothing, "")+`"`)
}

// postExpect posts body and checks the status and that the answer mentions want.
func postExpect(url string, body any, status int, want string) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+writeKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || !strings.Contains(string(reply), want) {
		return &replyError{status: resp.StatusCode, body: string(reply)}
	}
	return nil
}

type replyError struct {
	status int
	body   string
}

func (e *replyError) Error() string { return "HTTP " + http.StatusText(e.status) + ": " + e.body }
