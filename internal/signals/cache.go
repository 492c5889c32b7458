package signals

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache parses TC and GPP strings through bounded LRU caches. A user's CMP sends the same
// string with every event until the choice changes, and a long TC string costs about 20 µs to
// parse (BenchmarkParseTCF), so ingest (which validates) and the consent engine (which reads)
// each keep one. Errors are cached too: a client repeating a malformed string costs one parse.
// Parsed values are only read after parsing, so sharing them between goroutines is safe.
type Cache struct {
	tcf *lru.Cache[string, parsedTCF]
	gpp *lru.Cache[string, parsedGPP]
}

type parsedTCF struct {
	tc  TCF
	err error
}

type parsedGPP struct {
	g   GPP
	err error
}

// NewCache returns a cache holding up to size strings of each kind.
func NewCache(size int) *Cache {
	tcf, err := lru.New[string, parsedTCF](size)
	if err != nil {
		panic(fmt.Sprintf("signals: cache size %d: %v", size, err))
	}
	gpp, _ := lru.New[string, parsedGPP](size)
	return &Cache{tcf: tcf, gpp: gpp}
}

// ParseTCF is ParseTCF through the cache.
func (c *Cache) ParseTCF(s string) (TCF, error) {
	if p, ok := c.tcf.Get(s); ok {
		return p.tc, p.err
	}
	tc, err := ParseTCF(s)
	c.tcf.Add(s, parsedTCF{tc, err})
	return tc, err
}

// ParseGPP is ParseGPP through the cache; the applicable section ids are part of the key.
func (c *Cache) ParseGPP(s string, sid []int) (GPP, error) {
	key := s // no section ids and an empty list both mean "every section"
	if len(sid) > 0 {
		key = fmt.Sprint(sid) + s
	}
	if p, ok := c.gpp.Get(key); ok {
		return p.g, p.err
	}
	g, err := ParseGPP(s, sid)
	c.gpp.Add(key, parsedGPP{g, err})
	return g, err
}
