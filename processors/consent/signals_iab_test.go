package consent

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// iabVectors reads the strings IAB's own encoders wrote (internal/signals/testdata, the output
// of e2e/sdk/iabvectors.mjs; e2e checks the file is that output).
type iabVectors struct {
	US []struct {
		ID    int    `json:"id"`
		Tag   string `json:"tag"`
		Kind  string `json:"kind"`
		Field string `json:"field"`
		GPP   string `json:"gpp"`
	} `json:"us"`
	TCF []struct {
		Source, Name, TC, GPP string
	} `json:"tcf"`
}

func loadIAB(t *testing.T) iabVectors {
	t.Helper()
	b, err := os.ReadFile("../../internal/signals/testdata/iab_vectors.json")
	require.NoError(t, err)
	var v iabVectors
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

func decideOne(t *testing.T, pol *policy.Policy, ev *schemas.Event, dest string) string {
	t.Helper()
	d := outcomeFor(t, Decide(ev, nil, pol, decidedAt, ""), dest).Decision
	return d.Outcome + "/" + d.Reason + "/" + d.ConsentSource
}

// Every US section (USP v1, national v1 and v2, every state 8–27): a string saying "did not opt
// out" lets a sale destination through, one saying "opted out" blocks it (CONTRACT §8).
func TestDecideEveryGPPSection(t *testing.T) {
	pol := loadPolicy(t)
	n := 0
	for _, v := range loadIAB(t).US {
		if v.Kind != "kept" && v.Kind != "out" {
			continue
		}
		ev := baseEvent()
		ev.Jurisdiction = "US-CA"
		ev.Signals = &schemas.ConsentSignals{GPP: v.GPP, GPPSID: []int{v.ID}}
		want := "forwarded/consented/gpp"
		if v.Kind == "out" {
			want = "blocked/opted_out/gpp"
		}
		require.Equal(t, want, decideOne(t, pol, ev, "meta"), "%s %s %s", v.Tag, v.Kind, v.GPP)
		require.Equal(t, "forwarded/consented/", decideOne(t, pol, ev, "gads"), "%s: not a sale destination", v.Tag)
		n++
	}
	require.Equal(t, 2*(2+20)+3, n, "usnat v1 and v2, the states 8–27, uspv1 (three strings)")

	ev := baseEvent()
	ev.Jurisdiction = "US-CA"
	ev.Signals = &schemas.ConsentSignals{GPP: "DBABKY~BQSA.AAA"} // id 28, which IAB has not defined
	require.Equal(t, "blocked/opted_out/gpp", decideOne(t, pol, ev, "meta"), "an unknown section fails closed")
}

// A TCF publisher restriction of type 0 (not allowed) for the destination's tcf_vendor_id on a
// purpose it needs blocks it with no_consent, whatever the jurisdiction; other restriction types
// and other vendors are not blocked. The TC strings: @iabtcf/core's, and the tcfeuv2 and tcfcav1
// sections of GPP strings (purposes 1–4 and 7, vendors 755 and 1000 consented; vendor 1000 not
// allowed purpose 1, vendor 755 required consent for purpose 2).
func TestDecidePublisherRestrictions(t *testing.T) {
	for _, v := range loadIAB(t).TCF {
		t.Run(v.Name, func(t *testing.T) {
			for vendor, want := range map[string]string{"1000": "blocked/no_consent", "755": "forwarded/consented"} {
				pol := loadPolicy(t, "    sale: true\n    fields: [context.page_url, context.user_agent",
					"    sale: true\n    tcf_vendor_id: "+vendor+"\n    fields: [context.page_url, context.user_agent",
					"segment_categories:", sourcesYAML+"segment_categories:")
				for _, jurisdiction := range []string{"EU", "US-CA"} {
					ev := baseEvent()
					ev.Jurisdiction = jurisdiction
					ev.Signals = &schemas.ConsentSignals{TCF: v.TC, GPP: v.GPP}
					source := "tcf"
					if v.Source == "gpp" {
						source = "gpp"
					}
					require.Equal(t, want+"/"+source, decideOne(t, pol, ev, "meta"), "vendor %s in %s", vendor, jurisdiction)
				}
			}
		})
	}
}

// The sensitive rule's GPP hook: a US section refusing processing of sensitive data (or of a
// known child's data) makes a matching sensitive rule block analytics too, not only marketing.
func TestGPPSensitiveRefusalWidensTheSensitiveRule(t *testing.T) {
	pol := loadPolicy(t)
	vectors := map[string]string{}
	for _, v := range loadIAB(t).US {
		if v.Tag == "usnat" && (v.Kind == "kept" || v.Field == "SensitiveDataProcessing" || v.Field == "KnownChildSensitiveDataConsents") {
			vectors[v.Kind+v.Field] = v.GPP
		}
	}
	require.Len(t, vectors, 3)
	for name, gpp := range vectors {
		for _, page := range []string{"https://shop.example/pharmacy", "https://shop.example/checkout"} {
			ev := baseEvent()
			ev.Jurisdiction = "US-CA"
			ev.Context["page_url"] = `"` + page + `"`
			ev.Signals = &schemas.ConsentSignals{GPP: gpp, GPPSID: []int{7}}
			got := decideOne(t, pol, ev, "ga4")
			want := "forwarded/consented/"
			if name != "kept" && page == "https://shop.example/pharmacy" {
				want = "blocked/sensitive/"
			}
			require.Equal(t, want, got, "%s on %s", name, page)
		}
	}
}
