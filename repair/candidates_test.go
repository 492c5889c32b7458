package repair

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The walk takes a candidate once; the ledger still counts it a candidate afterwards (a
// delivery of it by another writer must reach the private ledger), and never one it was not.
func TestCandidatesTakeOnceAndRememberWhatTheyWere(t *testing.T) {
	c := &candidates{byDest: map[string]map[eventKey]int64{"meta": {keyOf("e1"): 1000}, "ga4": {keyOf("e2"): 2000}}, total: 2, left: 2}
	require.True(t, c.wants("e1"))
	require.False(t, c.wants("e3"))
	ms, ok := c.take("meta", "e1")
	require.True(t, ok)
	require.Equal(t, int64(1000), ms)
	_, ok = c.take("meta", "e1")
	require.False(t, ok, "taken once")
	_, ok = c.take("ga4", "e1")
	require.False(t, ok, "a candidate of another destination")
	require.False(t, c.wants("e1"))
	require.True(t, c.was("meta", "e1"), "still a candidate for the ledger")
	require.False(t, c.was("ga4", "e1"))
	require.Equal(t, 1, c.left)
}
