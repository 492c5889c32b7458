package audit

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The tables must have exactly the documented columns (docs/audit.md, "Tables"), in that order.
func TestMigrateCreatesContractTables(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()

	for table, want := range map[string][]column{
		"decisions":         decisionsColumns,
		"deliveries":        deliveriesColumns,
		"decisions_by_user": decisionsColumns,
		"schema_migrations": {{"version", "UInt32"}, {"applied_at", "DateTime"}},
		"erasures":          erasuresColumns,
	} {
		have, err := tableColumns(ctx, db, db.Database, table)
		require.NoError(t, err)
		require.Equal(t, want, have, table)
	}
	require.Equal(t, []column{
		{"decision_id", "String"}, {"event_id", "String"}, {"user_key", "String"}, {"destination", "String"},
		{"event_name", "String"}, {"event_time", "DateTime"}, {"decided_at", "DateTime"}, {"outcome", "String"},
		{"reason", "String"}, {"purpose", "String"}, {"jurisdiction", "String"}, {"gpc", "UInt8"},
		{"fields_sent", "Array(String)"}, {"fields_stripped", "Array(String)"}, {"policy_version", "String"},
		{"run_id", "String"}, {"consent_source", "String"}, {"consent_proof", "String"}, {"held_ms", "UInt32"},
	}, decisionsColumns, "docs/audit.md decisions")
	require.Equal(t, []column{
		{"event_id", "String"}, {"destination", "String"}, {"attempt", "UInt16"}, {"status", "String"},
		{"http_status", "UInt16"}, {"error", "String"}, {"latency_ms", "UInt32"}, {"at", "DateTime"},
		{"delivery_id", "String"}, {"run_id", "String"},
	}, deliveriesColumns, "docs/audit.md deliveries")

	for _, tc := range []struct{ table, engine, sortingKey, partitionKey string }{
		{"decisions", "ReplacingMergeTree", "destination, event_id, run_id", "toDate(decided_at)"},
		{"decisions_by_user", "ReplacingMergeTree", "user_key, destination, event_id, run_id", "toDate(decided_at)"},
		{"deliveries", "ReplacingMergeTree", "destination, event_id, attempt, status, delivery_id", "toDate(at)"},
		{"decisions_daily", "AggregatingMergeTree", "day, destination, reason, outcome, run_id", "toYYYYMM(day)"},
		{"deliveries_daily", "AggregatingMergeTree", "day, destination, status", "toYYYYMM(day)"},
	} {
		var engine, sortingKey, partitionKey string
		require.NoError(t, db.QueryRow(ctx, "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = ? AND name = ?",
			db.Database, tc.table).Scan(&engine, &sortingKey, &partitionKey))
		require.Equal(t, []string{tc.engine, tc.sortingKey, tc.partitionKey}, []string{engine, sortingKey, partitionKey}, tc.table)
	}
}

// An existing deployment at schema version 2 (month partitions by event_time) is upgraded in
// place: its rows move to the day-partitioned tables, the by-user copy and the daily summaries
// are filled from them, the old tables are gone, and a second run changes nothing.
func TestMigrateUpgradesVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openAtVersion(t, 2)
	key, err := partitionKey(ctx, db, db.Database, "decisions")
	require.NoError(t, err)
	require.Equal(t, "toYYYYMM(event_time)", key)

	var ds []schemas.Decision
	for i := range 50 {
		ds = append(ds, testDecision(i))
	}
	insertDecisionsV5(t, db, ds...)
	insertDecisionsV5(t, db, ds[:10]...) // copies, as a restarted writer leaves them
	insertDeliveriesV3(t, db, testDelivery(1), testDelivery(2), testDelivery(2))

	require.NoError(t, db.Migrate(ctx))
	key, err = partitionKey(ctx, db, db.Database, "decisions")
	require.NoError(t, err)
	require.Equal(t, "toDate(decided_at)", key)
	want := map[string]schemas.Decision{}
	for _, d := range ds {
		d.HeldMs = 0 // rows of before version 8
		want[d.DecisionID] = truncated(d)
	}
	require.Equal(t, want, readDecisions(t, db, "decisions"))
	require.Equal(t, want, readDecisions(t, db, "decisions_by_user"))
	require.Len(t, readDeliveries(t, db), 2)
	var daily uint64
	require.NoError(t, db.QueryRow(ctx, "SELECT uniqExactMerge(events) FROM "+db.table("decisions_daily")).Scan(&daily))
	require.Equal(t, uint64(50), daily, "summary counts each decision once")
	for _, old := range []string{"decisions_v2", "deliveries_v2", "decisions_by_user_v2", "decisions_v3"} {
		exists, err := tableExists(ctx, db, db.Database, old)
		require.NoError(t, err)
		require.False(t, exists, old)
	}
	applied, err := appliedVersions(ctx, db, db.Database)
	require.NoError(t, err)
	require.Equal(t, map[uint32]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}, applied)

	// An interrupted upgrade is re-run from where it stopped: running the step again is harmless.
	require.NoError(t, upgrade(ctx, db, target{database: db.Database, shape: shapeClassic}, 3))
	require.Equal(t, want, readDecisions(t, db, "decisions"))
	// New inserts reach every table through the new views.
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{testDecision(77)}))
	require.Len(t, readDecisions(t, db, "decisions_by_user"), 51)
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t)) // migrated once
	ctx := context.Background()
	tables := func() []string {
		rows, err := db.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db.Database)
		require.NoError(t, err)
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		return names
	}
	before := tables()
	require.Equal(t, []string{"decisions", "decisions_by_user", "decisions_by_user_mv", "decisions_counts", "decisions_daily",
		"deliveries", "deliveries_counts", "deliveries_daily", "duplicates", "erasures", "schema_migrations"}, before)
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{testDecision(1)}))

	require.NoError(t, db.Migrate(ctx))
	require.NoError(t, db.Migrate(ctx))

	require.Equal(t, before, tables())
	require.Equal(t, uint64(SchemaVersion), countRaw(t, db, "schema_migrations"), "one row per version, none added by the reruns")
	applied, err := appliedVersions(ctx, db, db.Database)
	require.NoError(t, err)
	require.Equal(t, map[uint32]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}, applied)
	require.Equal(t, uint64(1), countRaw(t, db, "decisions"), "data kept")
	require.Equal(t, uint64(1), countRaw(t, db, "decisions_by_user"), "the by-user copy is not redone")
}

// A table created by hand with a wrong column type is refused at start, not at the first insert.
func TestMigrateRefusesWrongColumns(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	db := openDB(t, cfg)
	ctx := context.Background()
	require.NoError(t, db.Exec(ctx, "DROP TABLE "+db.table("deliveries")))
	require.NoError(t, db.Exec(ctx, "CREATE TABLE "+db.table("deliveries")+
		" (event_id String, destination String, attempt UInt8, status String, http_status UInt16, error String, latency_ms UInt32, at DateTime)"+
		" ENGINE = MergeTree() ORDER BY event_id"))
	err := db.Migrate(ctx)
	require.EqualError(t, err, "table "+db.Database+".deliveries: column attempt is UInt8, want UInt16")
	var se *schemaError
	require.ErrorAs(t, err, &se)
}

func TestOpenRefusesBadDatabaseName(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{ClickHouse: config.ClickHouse{Addr: "127.0.0.1:1", Database: "x`; DROP TABLE y"}}
	_, err := Open(context.Background(), cfg) // refused before dialing
	require.ErrorContains(t, err, "use letters, digits and _ only")
	require.ErrorContains(t, (&DB{Database: cfg.ClickHouse.Database}).Migrate(context.Background()), "use letters, digits and _ only")
}

// insertDeliveriesV3 inserts deliveries the way writers before schema version 4 did (no
// delivery_id), into a table of that version.
func insertDeliveriesV3(t *testing.T, db *DB, ds ...schemas.Delivery) {
	t.Helper()
	for _, d := range ds {
		require.NoError(t, db.Exec(context.Background(), "INSERT INTO "+db.table("deliveries")+" ("+columnNames(schemaAt(3).table("deliveries").plainColumns())+
			") SELECT ?, ?, toUInt16(?), ?, toUInt16(?), ?, toUInt32(?), toDateTime(?)",
			d.EventID, d.Destination, d.Attempt, d.Status, d.HTTPStatus, d.Error, d.LatencyMs, d.AtMs/1000))
	}
}

// Version 4: two real requests for one event (same attempt and status, two delivery ids) are two
// rows under FINAL and two in the summary, while the same audit record inserted twice is
// one; a version-3 database keeps its rows through the upgrade, and a re-run changes nothing.
func TestMigrateVersion4KeepsEveryRealRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openAtVersion(t, 3)
	old := testDelivery(0)
	insertDeliveriesV3(t, db, old, old)

	require.NoError(t, db.Migrate(ctx))
	a, b := testDelivery(4), testDelivery(4)
	b.DeliveryID = "another-request"
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{a, b, a})) // a inserted twice: a writer restart
	got := readDeliveries(t, db)
	require.Len(t, got, 3, "the old row, and two real requests of event 4")
	summary, err := db.DeliverySummary(ctx)
	require.NoError(t, err)
	require.Equal(t, []DeliverySummaryRow{{"ga4", "delivered", 3}}, summary, "the summary counts requests too")

	require.NoError(t, upgrade(ctx, db, target{database: db.Database, shape: shapeClassic}, 4))
	require.Len(t, readDeliveries(t, db), 3, "a re-run changes nothing")
	for _, gone := range []string{"deliveries_v3", "deliveries_daily_v3"} {
		exists, err := tableExists(ctx, db, db.Database, gone)
		require.NoError(t, err)
		require.False(t, exists, gone)
	}
}

// openAtVersion opens a fresh test database migrated only up to schema version v, as a
// deployment of that version left it; it is dropped when the test ends.
func openAtVersion(t *testing.T, v uint32) *DB {
	t.Helper()
	ctx := context.Background()
	c := *testConfig(t)
	db, err := Open(ctx, &c)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db.Database+"`")
		_ = db.Close()
	})
	require.NoError(t, migrateTo(ctx, db, db.Database, v))
	return db
}

func partitionKey(ctx context.Context, db *DB, database, table string) (string, error) {
	var key string
	err := db.QueryRow(ctx, `SELECT partition_key FROM system.tables WHERE database = ? AND name = ?`, database, table).Scan(&key)
	return key, err
}
