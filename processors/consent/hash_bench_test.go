package consent

import "testing"

// BenchmarkHashField measures the normalise-and-hash of each field kind the engine hashes, per
// vendor type where the normalisation differs.
func BenchmarkHashField(b *testing.B) {
	for _, bc := range []struct{ name, dest, path, value string }{
		{"email", "meta_capi", "properties.email", `" Ann.Lee@Example.com "`},
		{"email_google_ads", "google_ads", "properties.email", `"ann.lee+shop@gmail.com"`},
		{"phone_meta", "meta_capi", "properties.phone", `"+49 (170) 123-4567"`},
		{"phone_e164", "tiktok", "properties.phone", `"0049 170 1234567"`},
		{"first_name", "meta_capi", "properties.first_name", `"Ann-Marie"`},
		{"city", "meta_capi", "properties.city", `"San Francisco"`},
		{"prehashed", "meta_capi", "properties.email", `"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"`},
		{"number", "meta_capi", "properties.phone", `491701234567`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(HashField(bc.dest, bc.path, bc.value)) != 66 {
					b.Fatal("not a quoted sha-256 hex")
				}
			}
		})
	}
}
