package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func TestEraseUserAndRecipients(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	d := func(id, user, dest, outcome string) schemas.Decision {
		x := testDecision(0)
		x.DecisionID, x.EventID, x.UserKey, x.Destination, x.Outcome = id, "e-"+id, user, dest, outcome
		return x
	}
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{
		d("1", "ann", "ga4", "forwarded"),
		d("2", "ann", "meta", "forwarded"), // forwarded, but dead-lettered: never received
		d("3", "ann", "ops", "forwarded"),
		d("4", "ann", "tiktok", "blocked"),
		d("5", "bob", "meta", "forwarded"),
	}))
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e-1", Destination: "ga4", Attempt: 1, Status: "delivered", AtMs: 1000},
		{EventID: "e-2", Destination: "meta", Attempt: 1, Status: "dead_lettered", AtMs: 1000},
		{EventID: "e-3", Destination: "ops", Attempt: 1, Status: "retrying", AtMs: 1000},
		{EventID: "e-3", Destination: "ops", Attempt: 2, Status: "delivered", AtMs: 2000},
		{EventID: "e-5", Destination: "meta", Attempt: 1, Status: "delivered", AtMs: 1000},
	}))
	got, err := UserRecipients(ctx, db, db.Database, "ann")
	require.NoError(t, err)
	require.Equal(t, []string{"ga4", "ops"}, got)

	require.NoError(t, EraseUser(ctx, db, db.Database, "ann"))
	for _, table := range []string{"decisions", "decisions_by_user"} {
		rows := readDecisions(t, db, table)
		require.Len(t, rows, 1, table)
		require.Equal(t, "bob", rows["5"].UserKey, table)
	}
	user, err := UserDecisions(ctx, db, db.Database, "ann", 0)
	require.NoError(t, err)
	require.Empty(t, user)
}

func TestAnonymizeBefore(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	old, recent := testDecision(1), testDecision(2)
	old.UserKey, old.DecidedMs = "ann", now.AddDate(0, 0, -91).UnixMilli()
	recent.UserKey, recent.DecidedMs = "ann", now.AddDate(0, 0, -89).UnixMilli()
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{old, recent}))

	require.NoError(t, AnonymizeBefore(ctx, db, db.Database, now.AddDate(0, 0, -90)))
	rows := readDecisions(t, db, "decisions")
	require.Equal(t, "", rows[old.DecisionID].UserKey)
	require.Equal(t, "ann", rows[recent.DecisionID].UserKey)
	byUser := readDecisions(t, db, "decisions_by_user")
	require.Len(t, byUser, 1)
	require.Contains(t, byUser, recent.DecisionID)
	n, err := CountDecisions(ctx, db, db.Database, "")
	require.NoError(t, err)
	require.Equal(t, uint64(2), n, "anonymised, not deleted")
}
