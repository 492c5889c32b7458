package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSendLagsMeasuresFromTheIntendedTime(t *testing.T) {
	var l sendLags
	now := time.Now()
	l.add(now.Add(-40 * time.Millisecond))
	l.add(now.Add(time.Hour)) // sent early: a negative lag, the median of the three
	l.add(now.Add(-80 * time.Millisecond))
	got := l.json()
	require.GreaterOrEqual(t, got["max_ms"], 80.0)
	require.Less(t, got["p50_ms"], 80.0)
	require.Len(t, l.ds, 3)
}
