package signals

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseGCM(t *testing.T) {
	cases := []struct {
		in      map[string]any
		want    map[string]State
		wantErr bool
	}{
		{map[string]any{"ad_storage": "granted", "analytics_storage": "denied"}, map[string]State{"ad_storage": Granted, "analytics_storage": Denied}, false},
		{map[string]any{"ad_storage": "unknown"}, nil, true},
		{map[string]any{"ad_storage": true}, nil, true},
		{map[string]any{"bogus": "granted"}, nil, true},
	}
	for _, c := range cases {
		got, err := ParseGCM(c.in)
		if (err != nil) != c.wantErr {
			t.Fatalf("%v: err %v", c.in, err)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Fatalf("%v: %s = %v, want %v", c.in, k, got[k], v)
			}
		}
	}
}

func TestParseGCS(t *testing.T) {
	got, err := ParseGCS("G110")
	if err != nil || got["ad_storage"] != Granted || got["analytics_storage"] != Denied {
		t.Fatalf("G110: %v %v", got, err)
	}
	for _, bad := range []string{"", "G1", "G12x", "X100", "G1000"} {
		if _, err := ParseGCS(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestCMPIDsFailClosed(t *testing.T) {
	onlyAllowed := CMPIDs{Allowed: []string{"C0002"}}
	if onlyAllowed.State("C0004") != Denied || onlyAllowed.State("C0002") != Granted {
		t.Fatal("allowed list without denied list must deny unlisted ids")
	}
	both := CMPIDs{Allowed: []string{"C0002"}, Denied: []string{"C0004"}, HasDenied: true}
	if both.State("C0003") != Unknown || both.State("C0004") != Denied {
		t.Fatal("with both lists an unlisted id made no choice")
	}
}

func TestGoogle755(t *testing.T) {
	all := func(int) bool { return true }
	only1 := func(n int) bool { return n == 1 }
	if m := Google755(all); m["ad_user_data"] != Granted || m["ad_personalization"] != Granted {
		t.Fatalf("all purposes: %v", m)
	}
	if m := Google755(only1); m["ad_storage"] != Granted || m["ad_user_data"] != Denied || m["ad_personalization"] != Denied {
		t.Fatalf("purpose 1 only: %v", m)
	}
}

func TestProof(t *testing.T) {
	if Proof("", "") != "" {
		t.Fatal("proof without strings")
	}
	sum := sha256.Sum256([]byte("a\nb"))
	if Proof("a", "b") != hex.EncodeToString(sum[:]) {
		t.Fatal("proof mismatch")
	}
}

func FuzzParseGCS(f *testing.F) {
	f.Add("G111")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseGCS(s)
		if err == nil && len(m) != 2 {
			t.Fatalf("%q: %v", s, m)
		}
	})
}

func TestConsentManagement(t *testing.T) {
	cases := []struct {
		in   map[string]any
		ids  []string
		want State
		err  bool
	}{
		{map[string]any{"allowedConsentIds": []any{"C1"}}, []string{"C1", "C2"}, Denied, false},
		{map[string]any{"allowedConsentIds": []any{"C1"}, "resolutionStrategy": "or"}, []string{"C1", "C2"}, Granted, false},
		{map[string]any{"allowedConsentIds": []any{"C1"}, "deniedConsentIds": []any{}}, []string{"C3"}, Unknown, false},
		{map[string]any{"deniedConsentIds": []any{"C3"}}, []string{"C3"}, Denied, false},
		// "and" with an id neither list names: not every id allowed, so no choice (never granted).
		{map[string]any{"allowedConsentIds": []any{"C1"}, "deniedConsentIds": []any{}}, []string{"C1", "C3"}, Unknown, false},
		{map[string]any{"allowedConsentIds": []any{"C1", "C3"}, "deniedConsentIds": []any{}}, []string{"C1", "C3"}, Granted, false},
		{map[string]any{"allowedConsentIds": "C1"}, nil, Unknown, true},
		{map[string]any{"resolutionStrategy": "xor"}, nil, Unknown, true},
	}
	for i, c := range cases {
		cm, err := ParseConsentManagement(c.in)
		if (err != nil) != c.err {
			t.Fatalf("case %d: err %v", i, err)
		}
		if err == nil && cm.Purpose(c.ids) != c.want {
			t.Fatalf("case %d: %v, want %v", i, cm.Purpose(c.ids), c.want)
		}
	}
}

func TestParseGCD(t *testing.T) {
	got, err := ParseGCD("11p1t1r1l5")
	require.NoError(t, err)
	require.Equal(t, map[string]State{"ad_storage": Denied, "analytics_storage": Granted, "ad_user_data": Granted}, got,
		"l (not set) is no choice")
	got, err = ParseGCD("13q3v3m2n5l1")
	require.NoError(t, err, "trailing characters after the four keys are not about them")
	require.Equal(t, map[string]State{"ad_storage": Denied, "analytics_storage": Granted, "ad_user_data": Denied, "ad_personalization": Granted}, got)
	for _, bad := range []string{"", "11p1p1p1p", "x1p1p1p1p5", "11p1p1p1z5", "11pxp1p1p5", strings.Repeat("1", 65)} {
		_, err := ParseGCD(bad)
		require.Error(t, err, bad)
	}
}

func FuzzParseGCD(f *testing.F) {
	for _, s := range []string{"11p1p1p1p5", "13r3r3r2r5l1", "11l1l1l1l1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseGCD(s)
		if err != nil {
			return
		}
		for k, st := range m {
			if !GCMKeys[k] || st == Unknown {
				t.Fatalf("%q: key %q state %v", s, k, st)
			}
		}
	})
}

// The cache answers what the parser answers, errors included.
func TestCache(t *testing.T) {
	c := NewCache(2)
	for range 2 {
		got, err := c.ParseTCF(tcSome)
		require.NoError(t, err)
		want, _ := ParseTCF(tcSome)
		require.Equal(t, want, got)
		_, err = c.ParseTCF("COyiBq")
		require.Error(t, err)
		g, err := c.ParseGPP("DBABBgA~xlgWEYCZAA", []int{8})
		require.NoError(t, err)
		require.Equal(t, []int{8}, g.Applicable)
		g, err = c.ParseGPP("DBABBgA~xlgWEYCZAA", nil)
		require.NoError(t, err, "the section ids are part of the key")
	}
}
