package signals

import "testing"

// The cost per event of reading the signals (the consent engine parses them once per event).
func BenchmarkParseTCF(b *testing.B) {
	for _, c := range []struct{ name, tc string }{{"long CMP string", tcAllButTen}, {"short", tcSome}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseTCF(c.tc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseGPP(b *testing.B) {
	b.ReportAllocs()
	const s = "DBABrGA~DSJgmkoZJSA.YA~BlgWEYCY.QA~BSFgmiU~bSFgmJQ.YA~BWJYJllA~bSFgmSZQ.YA"
	for b.Loop() {
		if _, err := ParseGPP(s, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// The cached parse, as ingest and the consent engine use it: a user's CMP repeats its string.
func BenchmarkCachedParseTCF(b *testing.B) {
	c := NewCache(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ParseTCF(tcAllButTen); err != nil {
			b.Fatal(err)
		}
	}
}
