package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Summaries are the same before and after their days are counted; an ended day is counted once,
// again when rows reach it later, never while it lasts; an erasure after a day was counted does
// not change its counts.
func TestCountedDays(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	at := func(day, hour int) time.Time { return time.Date(2026, 12, day, hour, 0, 0, 0, time.UTC) }
	dec := func(id, user, dest, outcome, reason string, decided time.Time) schemas.Decision {
		return schemas.Decision{DecisionID: id, EventID: "e-" + id, UserKey: user, Destination: dest, EventName: "purchase",
			EventTimeMs: decided.UnixMilli(), DecidedMs: decided.UnixMilli(), Outcome: outcome, Reason: reason,
			Purpose: "marketing", Jurisdiction: "EU", PolicyVersion: "v1"}
	}
	ds := []schemas.Decision{
		dec("1", "u-1", "meta", "forwarded", "consented", at(4, 9)),
		dec("2", "u-2", "meta", "forwarded", "consented", at(4, 10)),
		dec("3", "u-2", "ga4", "blocked", "no_consent", at(5, 23)),
		dec("4", "u-1", "meta", "forwarded", "consented", at(7, 1)), // today
	}
	require.NoError(t, db.InsertDecisions(ctx, ds))
	require.NoError(t, db.InsertDecisions(ctx, ds[:2])) // copies count once
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e-1", Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, AtMs: at(4, 9).UnixMilli(), DeliveryID: "d1"},
		{EventID: "e-1", Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, AtMs: at(4, 9).UnixMilli(), DeliveryID: "d1"},
		{EventID: "e-4", Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, AtMs: at(7, 1).UnixMilli(), DeliveryID: "d4"},
	}))
	summary := func() []SummaryRow {
		t.Helper()
		s, err := db.Summary(ctx)
		require.NoError(t, err)
		return s
	}
	deliveries := func() []DeliverySummaryRow {
		t.Helper()
		s, err := db.DeliverySummary(ctx)
		require.NoError(t, err)
		return s
	}
	want := []SummaryRow{{"ga4", "blocked", "no_consent", 1}, {"meta", "forwarded", "consented", 3}}
	require.Equal(t, want, summary(), "nothing counted yet: all from the tables")
	require.Equal(t, []DeliverySummaryRow{{"meta", "delivered", 2}}, deliveries())

	now := at(7, 12)
	days, err := db.CountDays(ctx, now)
	require.NoError(t, err)
	require.Equal(t, []string{"decisions_counts/20261204", "decisions_counts/20261205", "deliveries_counts/20261204"}, days,
		"the ended days, not today")
	require.Equal(t, want, summary(), "counted days plus today")
	require.Equal(t, []DeliverySummaryRow{{"meta", "delivered", 2}}, deliveries())
	days, err = db.CountDays(ctx, now)
	require.NoError(t, err)
	require.Empty(t, days, "nothing new to count")

	// u-1's erasure deletes their rows: today's leave the summary, the counted day's stay.
	require.NoError(t, db.EraseUser(ctx, "u-1"))
	require.Equal(t, []SummaryRow{{"ga4", "blocked", "no_consent", 1}, {"meta", "forwarded", "consented", 2}}, summary())
	days, err = db.CountDays(ctx, now)
	require.NoError(t, err)
	require.Empty(t, days, "an erasure's mutation adds no rows to count")

	// A row reaching a counted day (a writer back from a long outage) gets it counted again.
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{dec("5", "u-3", "ga4", "blocked", "no_consent", at(4, 11))}))
	days, err = db.CountDays(ctx, now)
	require.NoError(t, err)
	require.Equal(t, []string{"decisions_counts/20261204"}, days)
	require.Equal(t, []SummaryRow{{"ga4", "blocked", "no_consent", 2}, {"meta", "forwarded", "consented", 2}}, summary(),
		"the late row counts, the erased counted ones still count")

	// Today is counted once it has ended and the grace for inserts on their way has passed.
	days, err = db.CountDays(ctx, at(8, 0).Add(countGrace/2))
	require.NoError(t, err)
	require.Empty(t, days)
	require.Equal(t, []DeliverySummaryRow{{"meta", "delivered", 1}}, deliveries(), "the erasure deleted e-4's delivery before its day was counted")
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{dec("6", "u-3", "ga4", "forwarded", "consented", at(7, 2))}))
	days, err = db.CountDays(ctx, at(8, 0).Add(countGrace))
	require.NoError(t, err)
	require.Contains(t, days, "decisions_counts/20261207")
	require.Equal(t, []SummaryRow{{"ga4", "blocked", "no_consent", 2}, {"ga4", "forwarded", "consented", 1}, {"meta", "forwarded", "consented", 2}}, summary())
	require.Equal(t, []DeliverySummaryRow{{"meta", "delivered", 1}}, deliveries())
	days, err = db.CountDays(ctx, at(8, 0).Add(countGrace))
	require.NoError(t, err)
	require.Empty(t, days, "a day counted with nothing left in it is counted too")
}

// A database upgraded to version 9 stops filling the daily summaries and counts its days from
// the tables, or from the daily summary where retention has dropped the day from the table.
func TestCountsAfterUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openAtVersion(t, 8)
	var ds []schemas.Decision
	for i := range 30 {
		ds = append(ds, testDecision(i)) // 2026-11-20
	}
	old := testDecision(30)
	old.DecidedMs = time.Date(2026, 11, 18, 8, 0, 0, 0, time.UTC).UnixMilli()
	require.NoError(t, db.InsertDecisions(ctx, append(ds, old)))
	_, err := db.dropPartitionsBefore(ctx, "decisions", time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)

	require.NoError(t, db.Migrate(ctx))
	for _, view := range []string{"decisions_daily_mv", "deliveries_daily_mv"} {
		exists, err := tableExists(ctx, db, db.Database, view)
		require.NoError(t, err)
		require.False(t, exists, view)
	}
	before, err := db.Summary(ctx)
	require.NoError(t, err)
	days, err := db.CountDays(ctx, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Equal(t, []string{"decisions_counts/20261118", "decisions_counts/20261120"}, days)
	after, err := db.Summary(ctx)
	require.NoError(t, err)
	var total, totalBefore uint64
	for _, r := range after {
		total += r.Count
	}
	for _, r := range before {
		totalBefore += r.Count
	}
	require.Equal(t, uint64(31), total, "the dropped day from the daily summary, the other from decisions")
	require.Equal(t, uint64(30), totalBefore, "before counting, only what decisions holds")

	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{testDecision(31)}))
	var daily uint64
	require.NoError(t, db.QueryRow(ctx, "SELECT uniqExactMerge(events) FROM "+db.table("decisions_daily")).Scan(&daily))
	require.Equal(t, uint64(31), daily, "the daily summary is no longer filled")
}
