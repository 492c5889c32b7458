package delivery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

func TestWithdrawalsCheck(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	w := NewWithdrawals(time.Hour)
	w.now = func() time.Time { return now }
	at := now.UnixMilli()
	w.Apply(&schemas.ConsentUpdate{UserKey: "granter", Consent: map[string]bool{"marketing": true}}, at)
	w.Apply(&schemas.ConsentUpdate{UserKey: "w", Consent: map[string]bool{"marketing": false, "analytics": true}}, at)
	w.Apply(&schemas.ConsentUpdate{UserKey: "w", Consent: map[string]bool{"marketing": true}}, at+10) // re-grant
	w.Apply(&schemas.ConsentUpdate{UserKey: "gone", Erased: true}, at)
	require.Equal(t, 2, w.Len(), "a user granting everything is not remembered")

	ev := func(user, purpose string, decided int64) *schemas.FilteredEvent {
		return &schemas.FilteredEvent{UserKey: user, Purpose: purpose, DecidedMs: decided}
	}
	for _, tc := range []struct {
		ev   *schemas.FilteredEvent
		dest string
		want string
	}{
		{ev("w", "marketing", at-1), "marketing", BlockedWithdrawn},
		{ev("w", "marketing", at), "marketing", BlockedWithdrawn}, // same millisecond: blocked
		{ev("w", "marketing", at+1), "marketing", ""},             // decided after: the processor judged it
		{ev("w", "analytics", at-1), "analytics", ""},
		{ev("w", "analytics", at-1), "marketing", BlockedWithdrawn}, // the policy's purpose now counts too
		{ev("w", "necessary", at-1), "necessary", ""},
		{ev("gone", "necessary", at+999), "necessary", BlockedErased},
		{ev("granter", "marketing", at-1), "marketing", ""},
		{ev("nobody", "marketing", at-1), "marketing", ""},
	} {
		require.Equal(t, tc.want, w.Check(tc.ev, tc.dest), "%+v %s", tc.ev, tc.dest)
	}

	// Entries older than the horizon are forgotten (on the next sweep), newer ones kept.
	now = now.Add(time.Hour + time.Minute)
	w.Apply(&schemas.ConsentUpdate{UserKey: "recent", Consent: map[string]bool{"marketing": false}}, now.UnixMilli())
	w.mu.Lock()
	w.forgetLocked()
	w.mu.Unlock()
	require.Equal(t, 1, w.Len())
	require.Equal(t, BlockedWithdrawn, w.Check(ev("recent", "marketing", now.UnixMilli()-5), "marketing"))
}

func TestBackoffHonoursRetryAfterAndJitters(t *testing.T) {
	d := struct{ initial, max time.Duration }{100 * time.Millisecond, time.Second}
	r := &Runner{cfg: &config.Config{Delivery: deliveryConfig(d.initial, d.max)}}
	seen := map[time.Duration]bool{}
	for range 200 {
		b := r.backoff(3, 0)
		require.GreaterOrEqual(t, b, time.Duration(0))
		require.LessOrEqual(t, b, 400*time.Millisecond) // 100ms × 2²
		seen[b] = true
		require.LessOrEqual(t, r.backoff(30, 0), d.max)
		require.GreaterOrEqual(t, r.backoff(1, 5*time.Second), 5*time.Second, "Retry-After is a floor, even above max_backoff")
	}
	require.Greater(t, len(seen), 50, "full jitter spreads the waits")
	require.Equal(t, sdk.MaxRetryAfter, r.backoff(1, 1000*time.Hour))
}

func deliveryConfig(initial, max time.Duration) config.Delivery {
	return config.Delivery{InitialBackoff: initial, MaxBackoff: max}
}
