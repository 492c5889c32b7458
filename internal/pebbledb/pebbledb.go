// Package pebbledb opens the pebble databases behind tollgate's changelog-backed stores: the
// processor's state (internal/statestore) and each sink's delivery ledger (sinks/delivery). Both
// keep a local copy of what a Kafka topic holds, mostly answer "is this key here?" with "no",
// and had the same tuning written twice (a cache fix had to be made in both): it lives here once.
package pebbledb

import (
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Config is what differs between the stores.
type Config struct {
	// MemTableSize is pebble's memtable size; BlockCacheSize is what the cache keeps for blocks.
	//
	// Pebble counts memtables against the block cache: each one reserves its size in the cache
	// until it is flushed, and one spare is kept for reuse, so the cache keeps only what is left.
	// A cache the size of the memtables held no block at all, and every check read its filter
	// and index blocks from disk (~100 µs instead of ~12). Open sizes the cache for the blocks
	// plus the three memtables it will reserve (the mutable one, one being flushed, the spare).
	MemTableSize, BlockCacheSize int64
	// Bottom, when set, is set once the database has tables at its bottom level (at open, or
	// when a compaction writes some there): until then a lookup has no level to skip.
	Bottom *atomic.Bool
	// Adjust changes the options last (write-ahead log, block size, compression, a test's
	// file system).
	Adjust func(*pebble.Options)
}

// Open opens (creating it if needed) the database in dir.
func Open(dir string, c Config) (*pebble.DB, error) {
	cache := pebble.NewCache(c.BlockCacheSize + 3*c.MemTableSize)
	defer cache.Unref() // the database holds its own reference until it is closed
	opts := &pebble.Options{Cache: cache, MemTableSize: uint64(c.MemTableSize), Logger: quiet{}}
	for i := range opts.Levels {
		// Nearly every lookup is a miss (a user with no recorded choice, a new event): bloom
		// filters answer it without reading a data block.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Both stores take a stream of random keys (event ids, user keys) that lookups mostly miss.
	// Each L0 compaction rewrites the part of the base level its files overlap, which for random
	// keys is all of it: compacting 16 flushed files at a time instead of pebble's 4 rewrites the
	// base level a quarter as often. A lookup then asks up to 16 more L0 tables, each a bloom
	// filter (a miss reads no data block). BenchmarkLedgerRemember (sinks/delivery): bytes written
	// per entry 210 → 137, CPU per entry −30 %; BenchmarkLedgerCheckWhileWriting no slower.
	opts.L0CompactionThreshold, opts.L0CompactionFileThreshold, opts.L0StopWritesThreshold = 16, 64, 64
	if c.Adjust != nil {
		c.Adjust(opts)
	}
	bottomLevel := len(opts.Levels) - 1
	if c.Bottom != nil {
		opts.EventListener = &pebble.EventListener{CompactionEnd: func(info pebble.CompactionInfo) {
			if info.Output.Level == bottomLevel && len(info.Output.Tables) > 0 {
				c.Bottom.Store(true)
			}
		}}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	if c.Bottom != nil && db.Metrics().Levels[bottomLevel].TablesCount > 0 {
		c.Bottom.Store(true)
	}
	return db, nil
}

// quiet keeps pebble's routine log lines (compactions) out of tollgate's log; errors reach the
// caller as returned errors.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
