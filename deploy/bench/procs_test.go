package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A phase's total is the pipeline's and its services': not ClickHouse's merges twice (they are a
// part of its CPU), nor the vendor stand-ins, which play vendors on other hosts.
func TestCoresUsedTotal(t *testing.T) {
	before := map[string]float64{"ingest": 1, "clickhouse": 2, chMerges: 1, standinsName: 0}
	after := map[string]float64{"ingest": 2, "clickhouse": 4, chMerges: 2, standinsName: 3}
	got := coresUsed(before, after, 2*time.Second)
	require.Equal(t, 1.5, got["total"])
	require.Equal(t, 1.5, got[standinsName])
}
