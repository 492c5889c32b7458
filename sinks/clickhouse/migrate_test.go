package clickhouse

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The tables must have exactly the contract's columns (CONTRACT.md §6), in its order.
func TestMigrateCreatesContractTables(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()

	for table, want := range map[string][]column{
		"decisions":         decisionsColumns,
		"deliveries":        deliveriesColumns,
		"decisions_by_user": decisionsColumns,
		"schema_migrations": {{"version", "UInt32"}, {"applied_at", "DateTime"}},
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
		{"run_id", "String"},
	}, decisionsColumns, "CONTRACT.md §6 decisions")
	require.Equal(t, []column{
		{"event_id", "String"}, {"destination", "String"}, {"attempt", "UInt16"}, {"status", "String"},
		{"http_status", "UInt16"}, {"error", "String"}, {"latency_ms", "UInt32"}, {"at", "DateTime"},
	}, deliveriesColumns, "CONTRACT.md §6 deliveries")

	var engine, sortingKey, partitionKey string
	require.NoError(t, db.QueryRow(ctx, "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = ? AND name = 'decisions'",
		db.Database).Scan(&engine, &sortingKey, &partitionKey))
	require.Equal(t, "ReplacingMergeTree", engine)
	require.Equal(t, "destination, event_id, run_id", sortingKey)
	require.Equal(t, "toYYYYMM(event_time)", partitionKey)
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
	require.Equal(t, []string{"decisions", "decisions_by_user", "decisions_by_user_mv", "deliveries", "schema_migrations"}, before)
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{testDecision(1)}))

	require.NoError(t, Migrate(ctx, db, db.Database))
	require.NoError(t, Migrate(ctx, db, db.Database))

	require.Equal(t, before, tables())
	require.Equal(t, uint64(SchemaVersion), countRaw(t, db, "schema_migrations"), "one row per version, none added by the reruns")
	applied, err := appliedVersions(ctx, db, db.Database)
	require.NoError(t, err)
	require.Equal(t, map[uint32]bool{1: true, 2: true}, applied)
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
	err := Migrate(ctx, db, db.Database)
	require.EqualError(t, err, "table "+db.Database+".deliveries: column attempt is UInt8, want UInt16")
	var se *schemaError
	require.ErrorAs(t, err, &se)
}

func TestOpenRefusesBadDatabaseName(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{ClickHouse: config.ClickHouse{Addr: "127.0.0.1:1", Database: "x`; DROP TABLE y"}}
	_, err := Open(context.Background(), cfg) // refused before dialing
	require.ErrorContains(t, err, "use letters, digits and _ only")
	require.ErrorContains(t, Migrate(context.Background(), nil, cfg.ClickHouse.Database), "use letters, digits and _ only")
}
