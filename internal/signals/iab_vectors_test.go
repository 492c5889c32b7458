package signals

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testdata/iab_vectors.json is the output of e2e/sdk/iabvectors.mjs: strings written by IAB's
// own encoders (@iabgpp/cmpapi 3.2.0, @iabtcf/core 1.5.6) and what IAB's decoder reads back
// from them. e2e's TestIABVectorsAreIABs runs the script under node and checks this file is
// exactly its output.

type iabField struct {
	Name  string `json:"name"`
	Bits  int    `json:"bits"`
	Count int    `json:"count"`
}

type iabVectors struct {
	Layouts []struct {
		ID       int          `json:"id"`
		Name     string       `json:"name"`
		Version  int          `json:"version"`
		Segments [][]iabField `json:"segments"`
	} `json:"layouts"`
	TCFCA []iabField `json:"tcfcav1"`
	US    []usVector `json:"us"`
	TCF   []struct {
		Source       string `json:"source"`
		Name         string `json:"name"`
		ID           int    `json:"id"`
		TC           string `json:"tc"`
		GPP          string `json:"gpp"`
		Purposes     []int  `json:"purposes"`
		Vendors      []int  `json:"vendors"`
		Restrictions []struct {
			Purpose, Type, Vendor int
		} `json:"restrictions"`
	} `json:"tcf"`
}

// usVector is one GPP string of one US section. Kind is "kept" (every opt-out 2), "out"
// (SaleOptOut 1), "max" (Field alone with every bit set) or "version" (a version IAB does not
// define); Fields is what IAB's decoder reads from it.
type usVector struct {
	ID     int                        `json:"id"`
	Name   string                     `json:"name"`
	Tag    string                     `json:"tag"`
	Kind   string                     `json:"kind"`
	Field  string                     `json:"field"`
	GPP    string                     `json:"gpp"`
	Fields map[string]json.RawMessage `json:"fields"`
}

func loadIABVectors(t testing.TB) iabVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/iab_vectors.json")
	require.NoError(t, err)
	var v iabVectors
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.US)
	return v
}

// The table of field widths is IAB's: every US section's segments, field by field.
func TestGPPLayoutsMatchIAB(t *testing.T) {
	v := loadIABVectors(t)
	seen := map[int]bool{}
	for _, l := range v.Layouts {
		ours := usLayoutOf(l.ID, l.Version)
		require.NotNil(t, ours, "section %d %s version %d has no layout", l.ID, l.Name, l.Version)
		require.Equal(t, l.Name, ours.name)
		segs := [][]field{ours.core}
		if ours.sub != nil {
			segs = append(segs, ours.sub)
		}
		require.Equal(t, len(l.Segments), len(segs), "%s: segments", l.Name)
		for i, seg := range l.Segments {
			require.Equal(t, seg, iabFields(segs[i]), "%s segment %d", l.Name, i)
		}
		seen[l.ID] = true
	}
	for id := 7; id <= 27; id++ {
		require.True(t, seen[id], "IAB's encoder has no section %d", id)
	}
	require.Len(t, v.Layouts, 21, "a section IAB added: give it a layout")
	// tcfcav1: the fixed-width head of the core segment (the vendor ranges follow).
	require.Equal(t, v.TCFCA[:len(tcfCAHead)], iabFields(tcfCAHead))
	require.Equal(t, "VendorExpressConsent", v.TCFCA[len(tcfCAHead)].Name)
}

func iabFields(fs []field) []iabField {
	out := make([]iabField, len(fs))
	for i, f := range fs {
		out[i] = iabField{f.name, f.bits, f.count}
	}
	return out
}

// Every vector decodes to exactly what IAB's decoder reads: each field of the layout, and the
// opt-outs, sensitive-data refusal and GPC derived from them. A "max" vector sets one field
// alone to all ones, so a field read one bit off, or a width off by one, shows in it or in
// its neighbours.
func TestGPPSectionsReadAsIABDoes(t *testing.T) {
	v := loadIABVectors(t)
	ids := map[int]bool{}
	for _, vec := range v.US {
		t.Run(vec.Tag+"/"+vec.Kind+"/"+vec.Field, func(t *testing.T) {
			g, err := ParseGPP(vec.GPP, []int{vec.ID})
			require.NoError(t, err)
			require.Equal(t, []int{vec.ID}, g.Applicable)
			if vec.Kind == "version" {
				require.Equal(t, []int{vec.ID}, g.Unreadable, "a version tollgate does not know fails closed")
				require.True(t, g.OptedOut())
				return
			}
			require.Empty(t, g.Unreadable)
			want := wantFromIAB(t, vec)
			require.Equal(t, want, summary(g), "IAB fields %v", vec.Fields)
			if vec.ID >= sectionUSNat {
				require.Equal(t, iabValues(t, vec), decodeAll(t, vec.ID, vec.GPP))
			}
			switch vec.Kind {
			case "kept":
				require.False(t, g.OptedOut(), "did not opt out")
			case "out":
				require.True(t, g.Sale && g.OptedOut(), "opted out of sale")
			}
			ids[vec.ID] = true
		})
	}
	for id := 6; id <= 27; id++ {
		require.True(t, ids[id], "no vector for section %d", id)
	}
}

// gppSummary is what tollgate reads from a section.
type gppSummary struct{ Sale, Sharing, Targeted, Sensitive, GPC bool }

func summary(g GPP) gppSummary {
	return gppSummary{g.Sale, g.Sharing, g.TargetedAdvertising, g.SensitiveRefused, g.GPC}
}

// wantFromIAB derives the summary from IAB's reading of the fields: an opt-out or refusal is any
// value but 0 and 2 (CONTRACT §8: 1 opted out, 2 did not, 0 not applicable).
func wantFromIAB(t *testing.T, vec usVector) gppSummary {
	if vec.ID == sectionUSPv1 {
		var s string
		require.NoError(t, json.Unmarshal(vec.Fields["OptOutSale"], &s))
		return gppSummary{Sale: s == "Y"}
	}
	vals := iabValues(t, vec)
	refused := func(name string) bool {
		for _, x := range vals[name] {
			if x != 0 && x != 2 {
				return true
			}
		}
		return false
	}
	gpc := len(vals["Gpc"]) == 1 && vals["Gpc"][0] == 1
	return gppSummary{refused("SaleOptOut"), refused("SharingOptOut"), refused("TargetedAdvertisingOptOut"),
		refused("SensitiveDataProcessing") || refused("KnownChildSensitiveDataConsents"), gpc}
}

// iabValues turns IAB's decoded fields (numbers, lists, booleans) into lists of ints, keeping
// the fields of the layout that the string carries (IAB reports defaults for a segment the
// string leaves out, and flags such as GpcSegmentIncluded that are not encoded).
func iabValues(t *testing.T, vec usVector) map[string][]int {
	version := 0
	for _, k := range []string{"Version", "MspaVersion"} {
		if raw, ok := vec.Fields[k]; ok {
			require.NoError(t, json.Unmarshal(raw, &version))
		}
	}
	l := usLayoutOf(vec.ID, version)
	require.NotNil(t, l, "%s version %d", vec.Name, version)
	fields := l.core
	if l.sub != nil && strings.Contains(strings.SplitN(vec.GPP, "~", 2)[1], ".") {
		fields = cat(fields, l.sub)
	}
	out := map[string][]int{}
	for _, f := range fields {
		raw, ok := vec.Fields[f.name]
		require.True(t, ok, "IAB has no field %s", f.name)
		var x any
		require.NoError(t, json.Unmarshal(raw, &x))
		out[f.name] = ints(t, x)
	}
	return out
}

func ints(t *testing.T, x any) []int {
	switch v := x.(type) {
	case float64:
		return []int{int(v)}
	case bool:
		if v {
			return []int{1}
		}
		return []int{0}
	case []any:
		var out []int
		for _, e := range v {
			out = append(out, ints(t, e)...)
		}
		return out
	}
	t.Fatalf("unexpected IAB value %v", x)
	return nil
}

// decodeAll reads every field of the string's one section through the table.
func decodeAll(t *testing.T, id int, s string) map[string][]int {
	body := strings.SplitN(s, "~", 2)[1]
	segs := strings.Split(body, ".")
	r, err := newBitReader(segs[0])
	require.NoError(t, err)
	version, err := r.int(6)
	require.NoError(t, err)
	l := usLayoutOf(id, version)
	require.NotNil(t, l)
	out := map[string][]int{}
	visit := func(f *field, i, v int) { out[f.name] = append(out[f.name], v) }
	r.pos = 0
	require.NoError(t, readFields(r, l.core, visit))
	if l.sub != nil && len(segs) > 1 {
		r, err := newBitReader(segs[1])
		require.NoError(t, err)
		require.NoError(t, readFields(r, l.sub, visit))
	}
	return out
}

// TC strings from @iabtcf/core and the TCF sections of GPP strings from @iabgpp/cmpapi: the
// purposes and vendors consented, and the publisher restrictions with their types.
func TestTCFVectorsFromIAB(t *testing.T) {
	v := loadIABVectors(t)
	require.Len(t, v.TCF, 3)
	for _, vec := range v.TCF {
		t.Run(vec.Name, func(t *testing.T) {
			var tc TCF
			if vec.Source == "tcf" {
				var err error
				tc, err = ParseTCF(vec.TC)
				require.NoError(t, err)
			} else {
				g, err := ParseGPP(vec.GPP, nil)
				require.NoError(t, err)
				require.Equal(t, []int{vec.ID}, g.Applicable)
				require.Len(t, g.TCF, 1)
				require.False(t, g.OptedOut(), "a TCF section is not a US opt-out")
				tc = g.TCF[0]
			}
			for n := 1; n <= TCFPurposes; n++ {
				require.Equal(t, contains(vec.Purposes, n), tc.Purpose(n), "purpose %d", n)
			}
			for _, id := range []int{1, 8, 754, 755, 756, 999, 1000, 1001} {
				require.Equal(t, contains(vec.Vendors, id), tc.Vendor(id), "vendor %d", id)
			}
			for _, r := range vec.Restrictions {
				for typ := 0; typ <= 3; typ++ {
					require.Equal(t, typ == r.Type, tc.Restricted(r.Purpose, typ, r.Vendor),
						"purpose %d type %d vendor %d", r.Purpose, typ, r.Vendor)
				}
				require.False(t, tc.Restricted(r.Purpose, r.Type, r.Vendor+1))
				require.False(t, tc.Restricted(r.Purpose+2, r.Type, r.Vendor))
			}
		})
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// A string of every US section at once, built from the vectors' bodies: one header, the
// opt-outs of each section merged.
func TestGPPEverySectionInOneString(t *testing.T) {
	v := loadIABVectors(t)
	bodies := map[int]string{}
	for _, vec := range v.US {
		if vec.Kind == "kept" && vec.Tag == vec.Name {
			bodies[vec.ID] = strings.SplitN(vec.GPP, "~", 2)[1]
		}
	}
	var ids []int
	parts := []string{}
	for id := 6; id <= 27; id++ {
		ids = append(ids, id)
		parts = append(parts, bodies[id])
	}
	s := encodeHeader(ids) + "~" + strings.Join(parts, "~")
	g, err := ParseGPP(s, nil)
	require.NoError(t, err)
	require.Equal(t, ids, g.Applicable)
	require.False(t, g.OptedOut())
	for _, sid := range ids {
		g, err := ParseGPP(s, []int{sid})
		require.NoError(t, err, fmt.Sprint(sid))
		require.Equal(t, []int{sid}, g.Applicable)
	}
}
