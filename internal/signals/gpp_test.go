package signals

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Values IAB's validators refuse still decide: 3 in an opt-out or sensitive field is not "did
// not opt out" (only 0 and 2 are), so it counts as a refusal.
func TestGPPUndefinedValueIsARefusal(t *testing.T) {
	l := usLayoutOf(8, 1) // usca
	for _, name := range []string{"SaleOptOut", "SharingOptOut", "SensitiveDataProcessing", "KnownChildSensitiveDataConsents"} {
		w := &bitWriter{}
		for _, f := range l.core {
			for i := 0; i < f.count; i++ {
				switch {
				case f.name == "Version":
					w.int(1, f.bits)
				case f.name == name && i == f.count-1:
					w.int(3, f.bits)
				default:
					w.int(0, f.bits)
				}
			}
		}
		g, err := ParseGPP(encodeHeader([]int{8})+"~"+w.String(), nil)
		require.NoError(t, err, name)
		require.True(t, g.Sale || g.Sharing || g.SensitiveRefused, "%s = 3 is a refusal", name)
	}
}

func TestUSPv1(t *testing.T) {
	for body, sale := range map[string]bool{"1YYN": true, "1YNN": false, "1---": false, "1NYY": true} {
		g, err := ParseGPP(encodeHeader([]int{6})+"~"+body, nil)
		require.NoError(t, err, body)
		require.Equal(t, sale, g.Sale, body)
		require.Empty(t, g.Unreadable)
	}
	g, err := ParseGPP(encodeHeader([]int{6})+"~2YNN", nil)
	require.NoError(t, err)
	require.Equal(t, []int{6}, g.Unreadable, "a USP version tollgate does not know fails closed")
	for _, bad := range []string{"1YN", "1YNX", "AYNN", "1YNNN"} {
		_, err := ParseGPP(encodeHeader([]int{6})+"~"+bad, nil)
		requireFieldError(t, err, "gpp", bad)
	}
}

// The header names the sections the string carries, one id each, in order.
func TestGPPHeaderChecks(t *testing.T) {
	body := "BQoAAABA.QA" // usca, did not opt out
	for name, s := range map[string]string{
		"more ids than sections":  encodeHeader([]int{7, 8}) + "~" + body,
		"fewer ids than sections": encodeHeader([]int{8}) + "~" + body + "~" + body,
		"not type 3":              "BBABBg~" + body,
		"header version 2":        "DCABBg~" + body,
		"range to 65535":          "DBACNYA~" + body,
	} {
		_, err := ParseGPP(s, nil)
		requireFieldError(t, err, "gpp", name)
	}
	// A range header (sections 7 and 8 as one range entry).
	g, err := ParseGPP(encodeHeader([]int{7, 8})+"~CEAqAAAAAABA.QA~"+body, nil)
	require.NoError(t, err)
	require.Equal(t, []int{7, 8}, g.Applicable)
}

// IAB's encoder wrote tcfcav1's vendor ranges with fixed 16-bit ids before it followed the
// specification's Fibonacci codes; such a string is still read (as IAB's decoder does).
func TestTCFCALegacyRanges(t *testing.T) {
	w := &bitWriter{}
	for _, f := range tcfCAHead {
		for i := 0; i < f.count; i++ {
			switch {
			case f.name == "Version":
				w.int(1, f.bits)
			case f.name == "PurposesExpressConsent" && (i == 0 || i == 2):
				w.int(1, 1)
			default:
				w.int(0, f.bits)
			}
		}
	}
	fixedRange := func(ids ...int) {
		w.int(len(ids), 12)
		for _, id := range ids {
			w.int(0, 1)
			w.int(id, 16)
		}
	}
	w.int(1000, 16) // VendorExpressConsent: largest id, range type, a fixed range
	w.int(1, 1)
	fixedRange(755, 1000)
	w.int(0, 16) // VendorImpliedConsent: empty bitfield
	w.int(0, 1)
	w.int(1, 12) // one publisher restriction: purpose 3, type 0, vendor 1000
	w.int(3, 6)
	w.int(0, 2)
	fixedRange(1000)
	g, err := ParseGPP(encodeHeader([]int{5})+"~"+w.String(), nil)
	require.NoError(t, err)
	require.Len(t, g.TCF, 1)
	tc := g.TCF[0]
	require.True(t, tc.Purpose(1) && tc.Purpose(3) && !tc.Purpose(2))
	require.True(t, tc.Vendor(755) && tc.Vendor(1000) && !tc.Vendor(756))
	require.True(t, tc.Restricted(3, RestrictNotAllowed, 1000))
	require.False(t, tc.Restricted(3, RestrictNotAllowed, 755))
}

func TestStateMapping(t *testing.T) {
	for _, s := range []State{Unknown, Granted, Denied} {
		got, ok := ParseState(s.String())
		require.Equal(t, s != Unknown, ok)
		require.Equal(t, s, got)
	}
	_, ok := ParseState("Granted")
	require.False(t, ok, "only the exact lower-case word grants")
	require.Equal(t, "unknown", State(7).String())
	for _, c := range []struct{ a, b, want State }{
		{Granted, Denied, Denied}, {Denied, Granted, Denied}, {Unknown, Granted, Granted},
		{Granted, Unknown, Granted}, {Unknown, Unknown, Unknown}, {Denied, Unknown, Denied},
	} {
		require.Equal(t, c.want, Merge(c.a, c.b), "%v then %v", c.a, c.b)
	}
}
