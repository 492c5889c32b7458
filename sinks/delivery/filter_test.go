package delivery

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// The filter never says no for an id it holds (the ledger would send a delivered event again),
// says no for nearly every other id (so the store is rarely read), keeps days apart, and grows
// past one filter's capacity without losing its rate, by doubling.
func TestDayFilters(t *testing.T) {
	var f dayFilters
	const n = 3 * bloomCap / 2 // two filters for day 1
	for i := range n {
		f.add(1, fmt.Sprintf("held-%d", i))
	}
	for i := range n {
		require.True(t, f.mayHold(1, fmt.Sprintf("held-%d", i)))
	}
	require.False(t, f.mayHold(2, "held-1"), "another day")
	maybe := 0
	for i := range 100_000 {
		if f.mayHold(1, fmt.Sprintf("new-%d", i)) {
			maybe++
		}
	}
	require.Less(t, maybe, 3_000, "false positives over 3%% with two filters")
	require.Len(t, f.days[1].Parts(), 2, "the second filter twice the first")
	f.add(3, "next-day")
	require.Equal(t, uint64(n), f.days[3].Parts()[0].Capacity, "a new day sized like the largest")
	f.dropBefore(2)
	require.False(t, f.mayHold(1, "held-1"), "dropped with its day")
}

// BenchmarkDayFiltersNewEvent is the ledger's check of a new event (its day's filters say no)
// on a day of 10 million delivered events.
func BenchmarkDayFiltersNewEvent(b *testing.B) {
	var f dayFilters
	for i := range 10_000_000 {
		f.add(1, fmt.Sprintf("held-%d", i))
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("new-%d", i)
	}
	for i := 0; b.Loop(); i++ { // b.Loop starts the clock after the set-up
		f.mayHold(1, ids[i%len(ids)])
	}
}
