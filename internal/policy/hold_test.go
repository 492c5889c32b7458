package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHold(t *testing.T) {
	p, err := Parse("p.yaml", []byte(good))
	require.NoError(t, err)
	require.False(t, p.Holds(), "absent: no hold")

	p, err = Parse("p.yaml", []byte(good+"hold:\n  window: 10m\n"))
	require.NoError(t, err)
	require.True(t, p.Holds())
	require.Equal(t, 10*time.Minute, p.Hold.Window)
	require.Equal(t, DefaultHoldMaxEventsPerUser, p.Hold.MaxEventsPerUser)

	for _, tc := range []struct{ hold, want string }{
		{"hold:\n  window: soon\n", `p.yaml:18: hold.window: "soon" is not a duration (write it like 10m or 90s)`},
		{"hold:\n  max_events_per_user: 5\n", `p.yaml:18: hold.window: is required (how long an event waits for the choice, like 10m)`},
		{"hold:\n  window: 48h\n", `p.yaml:18: hold.window: must be more than 0 and at most 24h0m0s, not 48h0m0s`},
		{"hold:\n  window: 1m\n  max_events_per_user: -1\n", `p.yaml:19: hold.max_events_per_user: must be between 1 and 10000, not -1`},
		{"hold:\n  window: 1m\n  max: 3\n", `p.yaml: line 19: field max not found in type policy.Hold`},
	} {
		_, err := Parse("p.yaml", []byte(good+tc.hold))
		require.EqualError(t, err, tc.want, tc.hold)
	}
}
