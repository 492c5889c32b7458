package delivery

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// TestSplitLanesKeepsEachUserInOneLaneInOrder: every user's events land in one lane, in their
// order; lanes are bounded by concurrency; concurrency 1 is the one sequential lane.
func TestSplitLanesKeepsEachUserInOneLaneInOrder(t *testing.T) {
	var items []*item
	for i := range 500 {
		items = append(items, &item{ev: &schemas.FilteredEvent{EventID: fmt.Sprint(i), UserKey: fmt.Sprintf("u%d", i%37)}})
	}
	lanes := splitLanes(items, 1, 8)
	require.Greater(t, len(lanes), 1)
	require.LessOrEqual(t, len(lanes), 8*lanesPerWorker)
	laneOf := map[string]int{}
	var got []*item
	for li, lane := range lanes {
		for _, it := range lane {
			if prev, seen := laneOf[it.ev.UserKey]; seen {
				require.Equal(t, prev, li, "user %s in two lanes", it.ev.UserKey)
			}
			laneOf[it.ev.UserKey] = li
			got = append(got, it)
		}
	}
	require.Len(t, got, len(items), "an event lost or duplicated")
	last := map[string]int{}
	for _, lane := range lanes {
		for _, it := range lane {
			var n int
			fmt.Sscan(it.ev.EventID, &n)
			if p, ok := last[it.ev.UserKey]; ok {
				require.Greater(t, n, p, "user %s out of order", it.ev.UserKey)
			}
			last[it.ev.UserKey] = n
		}
	}

	require.Len(t, splitLanes(items, 1, 1), 1)
	require.Len(t, splitLanes(items, 1000, 8), 1, "fewer events than one request: one lane")
	require.Len(t, splitLanes(items, 100, 8), 5, "a lane per full request")
}

// While there are lanes left, each user gets one alone: a poll waits for its longest lane, and
// two users sharing a lane double it.
func TestSplitLanesGivesEachUserALaneWhileThereAreLanes(t *testing.T) {
	var items []*item
	for i := range 200 {
		items = append(items, &item{ev: &schemas.FilteredEvent{EventID: fmt.Sprint(i), UserKey: fmt.Sprintf("u%d", i%20)}})
	}
	lanes := splitLanes(items, 1, 8) // up to 32 lanes for 20 users
	require.Len(t, lanes, 20)
	for _, lane := range lanes {
		require.Len(t, lane, 10)
		for _, it := range lane {
			require.Equal(t, lane[0].ev.UserKey, it.ev.UserKey, "one user per lane")
		}
	}
}
