package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func TestQueries(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()

	dec := func(id, user, dest, outcome, reason, run string, minute int) schemas.Decision {
		return schemas.Decision{DecisionID: id, EventID: "e-" + id, UserKey: user, Destination: dest, EventName: "purchase",
			EventTimeMs: time.Date(2026, 11, 23, 10, minute, 0, 0, time.UTC).UnixMilli(), DecidedMs: time.Date(2026, 11, 23, 10, minute, 1, 0, time.UTC).UnixMilli(),
			Outcome: outcome, Reason: reason, Purpose: "marketing", Jurisdiction: "EU", FieldsSent: []string{"context.page_url"},
			FieldsStripped: []string{"properties.email"}, PolicyVersion: "v1", RunID: run}
	}
	ds := []schemas.Decision{
		dec("1", "u-1", "meta", "blocked", "no_consent", "", 3),
		dec("2", "u-1", "ga4", "forwarded", "consented", "", 2),
		dec("3", "u-2", "meta", "blocked", "no_consent", "", 1),
		dec("4", "u-2", "meta", "forwarded", "consented", "", 0),
		dec("5", "u-1", "meta", "forwarded", "consented", "run-a", 4), // a replay: not live traffic
	}
	require.NoError(t, db.InsertDecisions(ctx, ds))
	require.NoError(t, db.InsertDecisions(ctx, ds[:2])) // copies count once

	summary, err := db.Summary(ctx)
	require.NoError(t, err)
	require.Equal(t, []SummaryRow{
		{"ga4", "forwarded", "consented", 1},
		{"meta", "blocked", "no_consent", 2},
		{"meta", "forwarded", "consented", 1},
	}, summary)

	n, err := db.CountDecisions(ctx, "")
	require.NoError(t, err)
	require.Equal(t, uint64(4), n)
	n, err = db.CountDecisions(ctx, "run-a")
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)

	user, err := db.UserDecisions(ctx, "u-1", 0)
	require.NoError(t, err)
	require.Equal(t, []UserDecision{
		{EventTime: time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC), DecidedAt: time.Date(2026, 11, 23, 10, 2, 1, 0, time.UTC),
			EventID: "e-2", EventName: "purchase", Destination: "ga4", Outcome: "forwarded", Reason: "consented", Purpose: "marketing",
			Jurisdiction: "EU", FieldsSent: []string{"context.page_url"}, FieldsStripped: []string{"properties.email"}, PolicyVersion: "v1"},
		{EventTime: time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC), DecidedAt: time.Date(2026, 11, 23, 10, 3, 1, 0, time.UTC),
			EventID: "e-1", EventName: "purchase", Destination: "meta", Outcome: "blocked", Reason: "no_consent", Purpose: "marketing",
			Jurisdiction: "EU", FieldsSent: []string{"context.page_url"}, FieldsStripped: []string{"properties.email"}, PolicyVersion: "v1"},
	}, user)
	user, err = db.UserDecisions(ctx, "u-2", 1)
	require.NoError(t, err)
	require.Len(t, user, 1)
	require.Equal(t, "e-4", user[0].EventID)
	user, err = db.UserDecisions(ctx, "nobody' OR '1'='1", 0)
	require.NoError(t, err)
	require.Empty(t, user)

	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e-2", Destination: "ga4", Attempt: 1, Status: "retrying", HTTPStatus: 503, Error: "http_503", LatencyMs: 20, AtMs: 1_000},
		{EventID: "e-2", Destination: "ga4", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 15, AtMs: 3_000},
		{EventID: "e-4", Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, LatencyMs: 15, AtMs: 3_000},
		{EventID: "e-4", Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, LatencyMs: 15, AtMs: 3_000},
	}))
	ds2, err := db.DeliverySummary(ctx)
	require.NoError(t, err)
	require.Equal(t, []DeliverySummaryRow{{"ga4", "delivered", 1}, {"ga4", "retrying", 1}, {"meta", "delivered", 1}}, ds2)
	n, err = db.CountDeliveries(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(3), n)
}
