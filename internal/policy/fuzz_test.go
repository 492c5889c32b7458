package policy

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to the policy parser. It must never panic; an error must be one
// line that starts with the file name; an accepted policy must hold what the engine relies on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("version: v\npurposes: [necessary]\n"))
	f.Add([]byte("version: v\npurposes: [necessary]\ndestinations:\n  a:\n    type: webhook\n    purpose: necessary\n    fields: [properties.x]\n    hash: [properties.y]\n"))
	f.Add([]byte("sensitive:\n  - {name: x, field: context.page_url, pattern: \"(\"}\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Add([]byte("version: !!binary AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("p.yaml", data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "p.yaml") {
				t.Fatalf("error does not name the file: %q", msg)
			}
			return
		}
		if p.Version == "" || len(p.Purposes) == 0 {
			t.Fatalf("accepted a policy without version or purposes: %+v", p)
		}
		for name, d := range p.Destinations {
			if d == nil {
				t.Fatalf("destination %q is nil", name)
			}
			for _, h := range d.Hash {
				if !d.Hashed(h) {
					t.Fatalf("destination %q: hash %q not indexed", name, h)
				}
			}
			_ = p.Model("EU")
		}
		for _, r := range p.Sensitive {
			_ = r.Match("https://x/health")
		}
	})
}
