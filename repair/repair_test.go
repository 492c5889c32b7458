package repair

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

const testPolicy = `version: "v2"
purposes: [necessary, analytics, marketing]
destinations:
  ga4: {type: ga4, purpose: analytics}
  meta: {type: meta_capi, purpose: marketing}
  tiktok: {type: tiktok, purpose: marketing}
  ads: {type: google_ads, purpose: marketing}
  hook: {type: webhook, purpose: necessary, config: {max_event_age: 36h}}
  hook7: {type: webhook, purpose: necessary}
`

// TestTooOldByVendorWindow: an event is too old for a destination once its own time is further
// from the repair's clock than the vendor accepts; the clock is injected, nothing sleeps.
func TestTooOldByVendorWindow(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(testPolicy))
	require.NoError(t, err)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const minute = time.Minute
	for _, tc := range []struct {
		dest string
		age  time.Duration
		old  bool
	}{
		{"ga4", 72*time.Hour - minute, false},
		{"ga4", 72*time.Hour + minute, true},
		{"meta", 7*24*time.Hour - minute, false},
		{"meta", 7*24*time.Hour + minute, true},
		{"tiktok", 7*24*time.Hour + minute, true},
		{"ads", 89 * 24 * time.Hour, false},
		{"ads", 90*24*time.Hour + minute, true},
		{"hook", 36*time.Hour - minute, false},
		{"hook", 36*time.Hour + minute, true},
		{"hook7", 7*24*time.Hour - minute, false},
		{"hook7", 7*24*time.Hour + minute, true},
	} {
		var counts Counts
		s := &session{cfg: &config.Config{Policy: pol}, log: zap.NewNop(), counts: &counts,
			opt: withDefaults(Options{Now: func() time.Time { return now }}), pending: map[string][]*schemas.FilteredEvent{}}
		ev := &schemas.FilteredEvent{EventID: "e1", Destination: tc.dest, TimestampMs: now.Add(-tc.age).UnixMilli()}
		o := consent.Outcome{Decision: schemas.Decision{EventID: "e1", Destination: tc.dest, Outcome: consent.Forwarded}, Filtered: ev}
		require.NoError(t, s.repairEvent(context.Background(), o, now.Add(-time.Hour).UnixMilli()))
		if tc.old {
			require.Equal(t, 1, counts.TooOld, "%s %s", tc.dest, tc.age)
			require.Empty(t, s.pending[tc.dest])
			continue
		}
		require.Zero(t, counts.TooOld, "%s %s", tc.dest, tc.age)
		require.Len(t, s.pending[tc.dest], 1)
		require.Equal(t, now.Add(-time.Hour).UnixMilli(), s.pending[tc.dest][0].DecidedMs, "the live decision time: the re-check and the ledger key on it")
	}
}

// An event the policy now configured does not forward (the run did) is never sent: failed.
func TestRedecidedBlockedIsNotSent(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(testPolicy))
	require.NoError(t, err)
	var counts Counts
	s := &session{cfg: &config.Config{Policy: pol}, log: zap.NewNop(), counts: &counts, opt: withDefaults(Options{}),
		pending: map[string][]*schemas.FilteredEvent{}}
	o := consent.Outcome{Decision: schemas.Decision{EventID: "e1", Destination: "meta", Outcome: consent.Blocked, Reason: "no_consent"}}
	require.NoError(t, s.repairEvent(context.Background(), o, 0))
	require.Equal(t, 1, counts.Failed)
	require.Empty(t, s.pending["meta"])
}

func TestCountsLine(t *testing.T) {
	c := Counts{Candidates: 20, Sent: 12, TooOld: 4, Withdrawn: 3, Erased: 1}
	require.Equal(t, "repaired 20: sent 12, too_old 4, withdrawn 3, erased 1, already_delivered 0, failed 0", c.String())
}
