package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

func mutationCount(t testing.TB, db *DB) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count() FROM system.mutations WHERE database = ?", db.Database).Scan(&n))
	return n
}

func TestEraseUserAndRecipients(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	d := func(id, user, dest, outcome string) schemas.Decision {
		x := testDecision(0)
		x.DecisionID, x.EventID, x.UserKey, x.Destination, x.Outcome = id, "e-"+id, user, dest, outcome
		return x
	}
	replayed := d("6", "ann", "ga4", "forwarded")
	replayed.RunID = "run-1"
	evidence := d("7", "ann", "meta", "blocked") // decided after the erasure: kept
	evidence.Reason = "erased"
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{
		d("1", "ann", "ga4", "forwarded"),
		d("2", "ann", "meta", "forwarded"), // forwarded, but dead-lettered: never received
		d("3", "ann", "ops", "forwarded"),
		d("4", "ann", "tiktok", "blocked"),
		d("5", "bob", "meta", "forwarded"),
		replayed,
		evidence,
	}))
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e-1", Destination: "ga4", Attempt: 1, Status: "delivered", AtMs: 1000},
		{EventID: "e-2", Destination: "meta", Attempt: 1, Status: "dead_lettered", AtMs: 1000},
		{EventID: "e-3", Destination: "ops", Attempt: 1, Status: "retrying", AtMs: 1000},
		{EventID: "e-3", Destination: "ops", Attempt: 2, Status: "delivered", AtMs: 2000},
		{EventID: "e-5", Destination: "meta", Attempt: 1, Status: "delivered", AtMs: 1000},
	}))
	got, err := db.UserRecipients(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, []string{"ga4", "ops"}, got)

	require.NoError(t, db.EraseUser(ctx, "ann"))
	for _, table := range []string{"decisions", "decisions_by_user"} {
		rows := readDecisions(t, db, table)
		require.Len(t, rows, 2, table)
		require.Equal(t, "bob", rows["5"].UserKey, table)
		require.Equal(t, "erased", rows["7"].Reason, table)
	}
	dels := readDeliveries(t, db)
	require.Len(t, dels, 1, "the erased user's delivery attempts are gone")
	require.Equal(t, "e-5", dels[0].EventID)
	user, err := db.UserDecisions(ctx, "ann", 0)
	require.NoError(t, err)
	require.Len(t, user, 1)
	require.Equal(t, "erased", user[0].Reason)
	got, err = db.UserRecipients(ctx, "ann")
	require.NoError(t, err)
	require.Empty(t, got)

	// The erasure is listed by hash only.
	hashes, _, err := db.ErasedSince(ctx, time.Unix(0, 0))
	require.NoError(t, err)
	require.Equal(t, []string{userHash("ann")}, hashes)
	var n uint64
	require.NoError(t, db.QueryRow(ctx, "SELECT count() FROM "+db.table("erasures")+" WHERE user_hash = 'ann'").Scan(&n))
	require.Zero(t, n)

	// Idempotent, and cheap: nothing left to delete means no new mutation.
	before := mutationCount(t, db)
	require.NoError(t, db.EraseUser(ctx, "ann"))
	require.Equal(t, before, mutationCount(t, db))
	require.Len(t, readDecisions(t, db, "decisions"), 2)
	hashes, _, err = db.ErasedSince(ctx, time.Unix(0, 0))
	require.NoError(t, err)
	require.Len(t, hashes, 1)
}

// Retention with back-dated rows: as of "now", rows decided more than 90 days ago lose their
// user key (and their by-user copies), rows older than the 365-day hard limit are dropped with
// their partitions, newer rows are untouched, and a second run changes nothing.
func TestRetentionBackdatedRows(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 15, 30, 0, 0, time.UTC)
	ago := func(days int) int64 { return now.AddDate(0, 0, -days).UnixMilli() }
	dec := func(i, daysAgo int) schemas.Decision {
		d := testDecision(i)
		d.UserKey, d.DecidedMs = "ann", ago(daysAgo)
		return d
	}
	ancient, old, edge, recent := dec(1, 400), dec(2, 100), dec(3, 90), dec(4, 10)
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{ancient, old, edge, recent}))
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: ancient.EventID, Destination: "ga4", Attempt: 1, Status: "delivered", AtMs: ago(400)},
		{EventID: recent.EventID, Destination: "ga4", Attempt: 1, Status: "delivered", AtMs: ago(10)},
	}))

	res, err := db.ApplyRetention(ctx, now, 90*24*time.Hour, 365*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Anonymized, "only the 100-day-old row: 90 days ago falls within the kept day")
	day := func(days int) string { return now.AddDate(0, 0, -days).Format("20060102") }
	require.Equal(t, []string{"decisions/" + day(400), "decisions_by_user/" + day(400), "deliveries/" + day(400),
		"decisions_by_user/" + day(100)}, res.Dropped)

	rows := readDecisions(t, db, "decisions")
	require.Len(t, rows, 3)
	require.NotContains(t, rows, ancient.DecisionID)
	require.Equal(t, "", rows[old.DecisionID].UserKey)
	require.Equal(t, truncated(func() schemas.Decision { d := old; d.UserKey = ""; return d }()), rows[old.DecisionID], "only the user key changes")
	require.Equal(t, "ann", rows[edge.DecisionID].UserKey)
	require.Equal(t, "ann", rows[recent.DecisionID].UserKey)
	byUser := readDecisions(t, db, "decisions_by_user")
	require.Len(t, byUser, 2)
	require.Contains(t, byUser, edge.DecisionID)
	require.Contains(t, byUser, recent.DecisionID)
	dels := readDeliveries(t, db)
	require.Len(t, dels, 1)
	require.Equal(t, recent.EventID, dels[0].EventID)

	before := mutationCount(t, db)
	res, err = db.ApplyRetention(ctx, now, 90*24*time.Hour, 365*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, RetentionResult{}, res)
	require.Equal(t, before, mutationCount(t, db), "a second run starts no mutation")

	// Zero durations disable both steps.
	res, err = db.ApplyRetention(ctx, now.AddDate(10, 0, 0), 0, 0)
	require.NoError(t, err)
	require.Equal(t, RetentionResult{}, res)
	require.Len(t, readDecisions(t, db, "decisions"), 3)
}
