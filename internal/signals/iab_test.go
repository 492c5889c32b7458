package signals

import (
	"errors"
	"sort"
	"strings"
	"testing"

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
		requireFieldError(t, err, "tcf", bad)
	}
}

// caSaleOptOut and caKept are California sections written by IAB's encoder (@iabgpp/cmpapi
// 3.2.0: SaleOptOutNotice 1, SaleOptOut 1 or 2, SharingOptOut 2), with the GPC segment.
const (
	caSaleOptOut = "DBABBg~BQYAAABA.QA"
	caKept       = "DBABBg~BQoAAABA.QA"
)

func TestParseGPP(t *testing.T) {
	// National (SaleOptOut 2) and California (SaleOptOut 1) in one string.
	both := encodeHeader([]int{7, 8}) + "~CEAqAAAAAABA.QA~BQYAAABA.QA"
	cases := []struct {
		name                         string
		gpp                          string
		sid                          []int
		sale, sharing, targeted, out bool
		applicable                   []int
	}{
		{"CA sale opt-out", caSaleOptOut, []int{8}, true, false, false, true, []int{8}},
		{"CA no opt-out", caKept, []int{8}, false, false, false, false, []int{8}},
		{"gpp_sid picks national, CA ignored", both, []int{7}, false, false, false, false, []int{7}},
		{"no gpp_sid: every section applies", both, nil, true, false, false, true, []int{7, 8}},
		// prebid/go-gpp's CA example writes version 49, which IAB never defined: fails closed.
		{"CA section of an undefined version", "DBABBgA~xlgWEYCZAA", []int{8}, false, false, false, true, []int{8}},
		// prebid's example with sections 7–12: VA and UT say targeted advertising opt-out; its
		// national (version 3), CO and CT (version 27) sections are of undefined versions.
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
		requireFieldError(t, err, "gpp", bad)
	}
	_, err := ParseGPP("DBABBgA~xlgWEYCZAA", []int{0})
	requireFieldError(t, err, "gpp_sid[0]", "")
}

// requireFieldError checks err is a *FieldError naming field, with a reason.
func requireFieldError(t testing.TB, err error, field, input string) {
	t.Helper()
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "%q: %v is not a *FieldError", input, err)
	require.Equal(t, field, fe.Field, "%q", input)
	require.NotEmpty(t, fe.Reason)
}

func FuzzParseTCF(f *testing.F) {
	for _, s := range []string{tcAllButTen, tcOneToEight, tcNothing, tcSome, "C", "CO"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tc, err := ParseTCF(s)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "tcf" {
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
	v := loadIABVectors(f)
	for _, vec := range v.US {
		f.Add(vec.GPP, vec.ID)
	}
	for _, vec := range v.TCF {
		if vec.GPP != "" {
			f.Add(vec.GPP, 0)
		}
	}
	f.Fuzz(func(t *testing.T, s string, sid int) {
		var sids []int
		if sid != 0 {
			sids = []int{sid}
		}
		checkGPP(t, s, sids)
	})
}

// FuzzGPPSection feeds one section's body to its decoder under a well-formed header, so the
// fuzzer works on each decoder of the table (and USP v1, tcfeuv2, tcfcav1) directly.
func FuzzGPPSection(f *testing.F) {
	v := loadIABVectors(f)
	for _, vec := range v.US {
		f.Add(uint8(vec.ID), strings.SplitN(vec.GPP, "~", 2)[1])
	}
	for _, vec := range v.TCF {
		if vec.GPP != "" {
			f.Add(uint8(vec.ID), strings.SplitN(vec.GPP, "~", 2)[1])
		}
	}
	f.Fuzz(func(t *testing.T, id uint8, body string) {
		if id == 0 || strings.Contains(body, "~") {
			return
		}
		g := checkGPP(t, encodeHeader([]int{int(id)})+"~"+body, nil)
		if g != nil && USSection(int(id)) && usLayoutOf(int(id), 1) == nil && usLayoutOf(int(id), 2) == nil && int(id) != sectionUSPv1 {
			if !g.OptedOut() {
				t.Fatalf("section %d has no layout but did not fail closed", id)
			}
		}
	})
}

// checkGPP parses s and checks what must hold of any input: errors name their field, and a
// parsed string reports its opt-outs and unreadable sections as opted out.
func checkGPP(t *testing.T, s string, sids []int) *GPP {
	g, err := ParseGPP(s, sids)
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) || (fe.Field != "gpp" && !strings.HasPrefix(fe.Field, "gpp_sid[")) {
			t.Fatalf("error without path: %v", err)
		}
		return nil
	}
	if (g.Sale || g.Sharing || g.TargetedAdvertising || g.GPC || len(g.Unreadable) > 0) != g.OptedOut() {
		t.Fatal("an opt-out not reported")
	}
	if !sort.IntsAreSorted(g.Applicable) {
		t.Fatalf("applicable ids not sorted: %v", g.Applicable)
	}
	for _, tc := range g.TCF {
		for n := 0; n <= 12; n++ {
			_ = tc.Purpose(n)
			_ = tc.Restricted(n, 0, 755)
		}
		_ = tc.Vendor(755)
	}
	return &g
}
