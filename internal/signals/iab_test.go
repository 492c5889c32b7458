package signals

import (
	"strings"
	"testing"

	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/constants"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"
	"github.com/stretchr/testify/require"
)

// Real TC strings from prebid/go-gdpr's own test suite (written by CMPs).
const (
	// Purposes 1–10 consented; vendors 1, 2, 8, 9, 32, 755, 756 among others.
	tcAllButTen = "CPAavcCPAavcCAGABCFRBKCsAP_AAH_AAAqIHFNf_X_fb3_j-_59_9t0eY1f9_7_v-0zjgeds-8Nyd_X_L8X5mM7vB36pq4KuR4Eu3LBAQdlHOHcTUmw6IkVqTPsbk2Mr7NKJ7PEinMbe2dYGH9_n9XT_ZKY79_____7__-_____7_f__-__3_vp9V---wOJAIMBAUAgAEMAAQIFCIQAAQhiQAAAABBCIBQJIAEqgAWVwEdoIEACAxAQgQAgBBQgwCAAQAAJKAgBACwQCAAiAQAAgAEAIAAEIAILACQEAAAEAJCAAiACECAgiAAg5DAgIgCCAFABAAAuJDACAMooASBAPGQGAAKAAqACGAEwALgAjgBlgDUAHZAPsA_ACMAFLAK2AbwBMQCbAFogLYAYEAw8BkQDOQGeAM-EQHwAVABWAC4AIYAZAAywBqADZAHYAPwAgABGAClgFPANYAdUA-QCGwEOgIvASIAmwBOwCkQFyAMCAYSAw8Bk4DOQGfCQAYADgBzgN_CQTgAEAALgAoACoAGQAOAAeABAACIAFQAMIAaABqADyAIYAigBMgCqAKwAWAAuABvADmAHoAQ0AiACJgEsAS4AmgBSgC3AGGAMgAZcA1ADVAGyAO8AewA-IB9gH6AQAAjABQQClgFPAL8AYoA1gBtADcAG8AOIAegA-QCGwEOgIqAReAkQBMQCZQE2AJ2AUOApEBYoC2AFyALvAYEAwYBhIDDQGHgMiAZIAycBlwDOQGfANIAadA1gDWQoAEAYQaBIACoAKwAXABDADIAGWANQAbIA7AB-AEAAIKARgApYBT4C0ALSAawA3gB1QD5AIbAQ6Ai8BIgCbAE7AKRAXIAwIBhIDDwGMAMnAZyAzwBnwcAEAA4Bv4qA2ABQAFQAQwAmABcAEcAMsAagA7AB-AEYAKXAWgBaQDeAJBATEAmwBTYC2AFyAMCAYeAyIBnIDPAGfANyHQWQAFwAUABUADIAHAAQAAiABdADAAMYAaABqADwAH0AQwBFACZAFUAVgAsABcADEAGYAN4AcwA9ACGAERAJYAmABNACjAFKALEAW4AwwBkADKAGiANQAbIA3wB3gD2gH2AfoBGACVAFBAKeAWKAtAC0gFzALyAX4AxQBuADiQHTAdQA9ACGwEOgIiAReAkEBIgCbAE7AKHAU0AqwBYsC2ALZAXAAuQBdoC7wGEgMNAYeAxIBjADHgGSAMnAZUAywBlwDOQGfANEgaQBpIDSwGnANYAbGPABAIqAb-QgZgALAAoABkAEQALgAYgBDACYAFUALgAYgAzABvAD0AI4AWIAygBqADfAHfAPsA_ACMAFBAKGAU-AtAC0gF-AMUAdQA9ACQQEiAJsAU0AsUBaMC2ALaAXAAuQBdoDDwGJAMiAZOAzkBngDPgGiANJAaWA4AlAyAAQAAsACgAGQAOAAigBgAGIAPAAiABMACqAFwAMQAZgA2gCGgEQARIAowBSgC3AGEAMoAaoA2QB3gD8AIwAU-AtAC0gGKANwAcQA6gCHQEXgJEATYAsUBbAC7QGHgMiAZOAywBnIDPAGfANIAawA4AmACARUA38pBBAAXABQAFQAMgAcABAACKAGAAYwA0ADUAHkAQwBFACYAFIAKoAWAAuABiADMAHMAQwAiABRgClAFiALcAZQA0QBqgDZAHfAPsA_ACMAFBAKGAVsAuYBeQDaAG4APQAh0BF4CRAE2AJ2AUOApoBWwCxQFsALgAXIAu0BhoDDwGMAMiAZIAycBlwDOQGeAM-gaQBpMDWANZAbGVABAA-Ab-A.YAAAAAAAAAAA"
	// Purposes 1–8; vendors 8, 9, 32 but not 755.
	tcOneToEight = "COyiBqdOyiBqdObAAAENAfCIAP8AAH-AAAAAB4AXQQgEAAAgoAAAAABAIYQUAAAAAAAAAAAAAAAIQIQCxIvkgQMAAAABgAIAAAAAAAAAAABAZAkAAA"
	// No purpose, no vendor.
	tcNothing = "COyiCPlOyiCPlKxMIAENAfCAAAAAAAAAAAAAAAAAAAAA"
	// Purposes 1, 2, 3, 5, 6, 7, 9; vendors 1, 2, 9.
	tcSome = "COwGVJOOwGVJOADACHENAOCAAO6as_-AAAhoAFNLAAoAAAA"
)

func TestParseTCF(t *testing.T) {
	cases := []struct {
		name     string
		tc       string
		purposes []int
		vendors  map[int]bool
	}{
		{"all but 10 and 11", tcAllButTen, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, map[int]bool{755: true, 756: true, 3: false}},
		{"one to eight", tcOneToEight, []int{1, 2, 3, 4, 5, 6, 7, 8}, map[int]bool{8: true, 32: true, 755: false}},
		{"nothing", tcNothing, nil, map[int]bool{1: false, 755: false}},
		{"some", tcSome, []int{1, 2, 3, 5, 6, 7, 9}, map[int]bool{1: true, 2: true, 3: false, 755: false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc, err := ParseTCF(c.tc)
			require.NoError(t, err)
			var got []int
			for n := 0; n <= 12; n++ {
				if tc.Purpose(n) {
					got = append(got, n)
				}
			}
			require.Equal(t, c.purposes, got)
			for v, want := range c.vendors {
				require.Equal(t, want, tc.Vendor(v), "vendor %d", v)
			}
			require.Equal(t, c.tc, tc.Raw())
		})
	}
}

func TestParseTCFMalformed(t *testing.T) {
	for _, bad := range []string{
		"",
		"BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",    // TCF v1 string: refused, not read as v2
		"CONciguONcjGKADACHENAOCIAC0ta__AACiQAA", // truncated (go-gdpr's own negative case)
		"C%%%",
		"CPtGDMAPtGDMALMAAAENA_C_AAAAAAAAACiQAAAAAAAA"[:30],
	} {
		_, err := ParseTCF(bad)
		require.Error(t, err, "%q", bad)
		require.True(t, strings.HasPrefix(err.Error(), "consent_signals.tcf: "), err.Error())
	}
}

// gpcSeg is the GPC subsection the encoder writes (subsection type 1, GPC not set).
var gpcSeg = sections.CommonUSGPCSegment{SubsectionType: 1}

// encodeGPP builds a GPP string with prebid/go-gpp's own encoder.
func encodeGPP(t *testing.T, secs ...gpp.Section) string {
	t.Helper()
	s, err := gpp.Encode(secs)
	require.NoError(t, err)
	return s
}

func TestParseGPP(t *testing.T) {
	caSale := encodeGPP(t, uspca.USPCA{SectionID: constants.SectionUSPCA, CoreSegment: uspca.USPCACoreSegment{
		Version: 1, SaleOptOutNotice: 1, SaleOptOut: 1, SharingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2)}, GPCSegment: gpcSeg})
	caNone := encodeGPP(t, uspca.USPCA{SectionID: constants.SectionUSPCA, CoreSegment: uspca.USPCACoreSegment{
		Version: 1, SaleOptOut: 2, SharingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2)}, GPCSegment: gpcSeg})
	natShare := encodeGPP(t, uspnat.USPNAT{SectionID: constants.SectionUSPNAT, CoreSegment: uspnat.USPNATCoreSegment{
		Version: 1, SaleOptOut: 2, SharingOptOut: 1, TargetedAdvertisingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 12), KnownChildSensitiveDataConsents: make([]byte, 2)}, GPCSegment: gpcSeg})
	utTargeted := encodeGPP(t, usput.USPUT{SectionID: constants.SectionUSPUT, CoreSegment: usput.USPUTCoreSegment{
		Version: 1, SaleOptOut: 2, TargetedAdvertisingOptOut: 1,
		SensitiveDataProcessing: make([]byte, 8)}})
	// CA says sale opt-out, national says nothing opted out.
	both := encodeGPP(t,
		uspnat.USPNAT{SectionID: constants.SectionUSPNAT, CoreSegment: uspnat.USPNATCoreSegment{Version: 1, SaleOptOut: 2,
			SensitiveDataProcessing: make([]byte, 12), KnownChildSensitiveDataConsents: make([]byte, 2)}, GPCSegment: gpcSeg},
		uspca.USPCA{SectionID: constants.SectionUSPCA, CoreSegment: uspca.USPCACoreSegment{Version: 1, SaleOptOut: 1,
			SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2)}, GPCSegment: gpcSeg})

	cases := []struct {
		name                         string
		gpp                          string
		sid                          []int
		sale, sharing, targeted, out bool
		applicable                   []int
	}{
		{"CA sale opt-out", caSale, []int{8}, true, false, false, true, []int{8}},
		{"CA no opt-out", caNone, []int{8}, false, false, false, false, []int{8}},
		{"national sharing opt-out", natShare, nil, false, true, false, true, []int{7}},
		{"UT targeted advertising opt-out", utTargeted, []int{11}, false, false, true, true, []int{11}},
		{"gpp_sid picks national, CA ignored", both, []int{7}, false, false, false, false, []int{7}},
		{"no gpp_sid: every section applies", both, nil, true, false, false, true, []int{7, 8}},
		// IAB/prebid published example: CA section, SaleOptOut=2 (did not opt out).
		{"published CA example", "DBABBgA~xlgWEYCZAA", []int{8}, false, false, false, false, []int{8}},
		// Published example with sections 7–12: VA/CO/... say targeted advertising opt-out.
		{"published 7-12 example", "DBABrGA~DSJgmkoZJSA.YA~BlgWEYCY.QA~BSFgmiU~bSFgmJQ.YA~BWJYJllA~bSFgmSZQ.YA", nil, false, false, true, true, []int{7, 8, 9, 10, 11, 12}},
		// A TCF EU section only: no US opt-out.
		{"EU TCF section only", "DBABM~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", []int{2}, false, false, false, false, []int{2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGPP(c.gpp, c.sid)
			require.NoError(t, err)
			require.Equal(t, c.sale, g.Sale, "sale")
			require.Equal(t, c.sharing, g.Sharing, "sharing")
			require.Equal(t, c.targeted, g.TargetedAdvertising, "targeted")
			require.Equal(t, c.out, g.OptedOut(), "opted out")
			require.Equal(t, c.applicable, g.Applicable)
		})
	}
}

func TestParseGPPMalformed(t *testing.T) {
	for _, bad := range []string{"", "XBABBgA~xlgWEYCZAA", "DBABBgA", "DBABBgA~", "DBABBgA~%%", "DBABrGA~DSJgmkoZJSA.YA",
		"D000AA7AiiiiiAABS00", // fuzzer find: exponential Fibonacci decode in go-gpp
	} {
		_, err := ParseGPP(bad, nil)
		require.Error(t, err, "%q", bad)
		require.True(t, strings.HasPrefix(err.Error(), "consent_signals.gpp: "), err.Error())
	}
	_, err := ParseGPP("DBABBgA~xlgWEYCZAA", []int{0})
	require.ErrorContains(t, err, "consent_signals.gpp_sid[0]")
}

func FuzzParseTCF(f *testing.F) {
	for _, s := range []string{tcAllButTen, tcOneToEight, tcNothing, tcSome, "C", "CO"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tc, err := ParseTCF(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "consent_signals.tcf: ") {
				t.Fatalf("error without path: %v", err)
			}
			return
		}
		for n := 0; n <= 12; n++ {
			_ = tc.Purpose(n)
		}
		_ = tc.Vendor(755)
	})
}

func FuzzParseGPP(f *testing.F) {
	f.Add("DBABBgA~xlgWEYCZAA", 8)
	f.Add("DBABrGA~DSJgmkoZJSA.YA~BlgWEYCY.QA~BSFgmiU~bSFgmJQ.YA~BWJYJllA~bSFgmSZQ.YA", 0)
	f.Add("DBABM~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", 2)
	f.Fuzz(func(t *testing.T, s string, sid int) {
		var sids []int
		if sid != 0 {
			sids = []int{sid}
		}
		g, err := ParseGPP(s, sids)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "consent_signals.gpp") {
				t.Fatalf("error without path: %v", err)
			}
			return
		}
		if g.Sale && !g.OptedOut() {
			t.Fatal("sale opt-out not reported")
		}
	})
}
