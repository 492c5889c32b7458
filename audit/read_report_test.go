package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func reportDecision(id, user, dest, outcome, reason, run string, decided time.Time, fields ...string) schemas.Decision {
	return schemas.Decision{DecisionID: id + run, EventID: "e-" + id, UserKey: user, Destination: dest, EventName: "purchase",
		EventTimeMs: decided.Add(-time.Second).UnixMilli(), DecidedMs: decided.UnixMilli(), Outcome: outcome, Reason: reason,
		Purpose: "marketing", Jurisdiction: "EU", FieldsSent: fields, FieldsStripped: []string{}, PolicyVersion: "v1", RunID: run}
}

// held is d as the hold released it after ms milliseconds.
func held(d schemas.Decision, ms int64) schemas.Decision {
	d.HeldMs = ms
	return d
}

func TestUserReportAndBlocked(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ds := []schemas.Decision{
		held(reportDecision("1", "ann", "meta", "forwarded", "consented", "", now.Add(-3*time.Hour), "context.page_url"), 2400),
		reportDecision("1", "ann", "ga4", "blocked", "no_consent", "", now.Add(-3*time.Hour)),
		reportDecision("2", "ann", "meta", "blocked", "gpc", "", now.Add(-2*time.Hour)),
		reportDecision("3", "bob", "meta", "blocked", "gpc", "", now.Add(-time.Hour)),
		reportDecision("4", "bob", "meta", "blocked", "no_consent", "", now.Add(-48*time.Hour)), // before --since
		reportDecision("1", "ann", "meta", "blocked", "gpc", "run-x", now),                      // a replay: not live
	}
	require.NoError(t, db.InsertDecisions(ctx, ds))
	require.NoError(t, db.InsertDecisions(ctx, ds)) // copies count once
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e-1", Destination: "meta", Attempt: 1, Status: "retrying", HTTPStatus: 503, Error: "http_503", AtMs: now.Add(-170 * time.Minute).UnixMilli()},
		{EventID: "e-1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, AtMs: now.Add(-160 * time.Minute).UnixMilli()},
	}))

	rep, err := db.UserReport(ctx, "ann", 0)
	require.NoError(t, err)
	require.Len(t, rep, 3)
	require.Equal(t, []string{"ga4", "meta", "meta"}, []string{rep[0].Destination, rep[1].Destination, rep[2].Destination})
	require.Nil(t, rep[0].Delivery, "blocked: never attempted")
	require.Equal(t, &UserDelivery{Attempts: 2, Status: "delivered", HTTPStatus: 200, At: now.Add(-160 * time.Minute)}, rep[1].Delivery)
	require.Equal(t, []string{"context.page_url"}, rep[1].FieldsSent)
	require.Equal(t, uint32(2400), rep[1].HeldMs, "held 2.4 s for the choice")
	require.Zero(t, rep[0].HeldMs)
	require.Equal(t, "gpc", rep[2].Reason)
	require.Nil(t, rep[2].Delivery)

	blocked, err := db.Blocked(ctx, now.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, []BlockedRow{{"ga4", "no_consent", 1}, {"meta", "gpc", 2}}, blocked)
	blocked, err = db.Blocked(ctx, now.Add(-72*time.Hour))
	require.NoError(t, err)
	require.Equal(t, []BlockedRow{{"ga4", "no_consent", 1}, {"meta", "gpc", 2}, {"meta", "no_consent", 1}}, blocked)
}

func TestDiff(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	live := []schemas.Decision{
		reportDecision("1", "ann", "meta", "forwarded", "consented", "", now, "context.page_url", "properties.email"),
		reportDecision("2", "ann", "meta", "forwarded", "consented", "", now, "context.page_url"),
		reportDecision("3", "bob", "ga4", "forwarded", "consented", "", now, "b", "a"),
		reportDecision("4", "bob", "ga4", "blocked", "no_consent", "", now),
	}
	replay := []schemas.Decision{
		reportDecision("1", "ann", "meta", "forwarded", "consented", "r1", now, "context.page_url"), // a field removed
		reportDecision("2", "ann", "meta", "forwarded", "consented", "r1", now, "context.page_url"), // same
		reportDecision("3", "bob", "ga4", "forwarded", "consented", "r1", now, "a", "b"),            // order only: same
		reportDecision("4", "bob", "ga4", "blocked", "gpc", "r1", now),                              // reason changed
		reportDecision("5", "cy", "tiktok", "blocked", "no_consent", "r1", now),                     // no live decision
		reportDecision("1", "ann", "meta", "blocked", "gpc", "r2", now),                             // another run
	}
	require.NoError(t, db.InsertDecisions(ctx, append(live, replay...)))
	require.NoError(t, db.InsertDecisions(ctx, replay)) // copies count once

	res, err := db.Diff(ctx, "r1", 0)
	require.NoError(t, err)
	require.Equal(t, uint64(5), res.Compared)
	require.Equal(t, uint64(3), res.Changed)
	require.Equal(t, []DiffCount{
		{Destination: "ga4", LiveOutcome: "blocked", LiveReason: "no_consent", ReplayOutcome: "blocked", ReplayReason: "gpc", Count: 1},
		{Destination: "meta", LiveOutcome: "forwarded", LiveReason: "consented", ReplayOutcome: "forwarded", ReplayReason: "consented", FieldsChanged: true, Count: 1},
		{Destination: "tiktok", ReplayOutcome: "blocked", ReplayReason: "no_consent", Count: 1},
	}, res.Counts)
	require.Len(t, res.Rows, 3)
	meta := res.Rows[1]
	require.Equal(t, "e-1", meta.EventID)
	require.Equal(t, []string{"properties.email"}, meta.FieldsRemoved)
	require.Equal(t, []string{}, meta.FieldsAdded)
	require.Equal(t, "v1", meta.Live.PolicyVersion)
	require.Nil(t, res.Rows[2].Live)

	res, err = db.Diff(ctx, "r1", 1)
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.Changed, "counts cover every change")
	require.Len(t, res.Rows, 1)

	res, err = db.Diff(ctx, "no-such-run", 0)
	require.NoError(t, err)
	require.Equal(t, uint64(0), res.Compared)
	require.Empty(t, res.Rows)
}
