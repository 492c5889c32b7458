package signals

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
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
