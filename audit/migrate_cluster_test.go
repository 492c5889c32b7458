package audit

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tableShape is what must be equal between a migrated table and its cluster twin.
type tableShape struct {
	Name, Engine, PartitionKey, SortingKey, Columns, Query string
}

// schemaShapes reads every table and view of a database: engine (without "Replicated"),
// partition and sorting keys, columns in order, and the CREATE statement with the database name,
// ON CLUSTER and the Replicated* engine arguments taken out.
func schemaShapes(t testing.TB, db *DB, database string) map[string]tableShape {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT name, engine, partition_key, sorting_key, create_table_query FROM system.tables WHERE database = ?`, database)
	require.NoError(t, err)
	defer rows.Close()
	replicatedArgs := regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?`)
	out := map[string]tableShape{}
	for rows.Next() {
		var s tableShape
		require.NoError(t, rows.Scan(&s.Name, &s.Engine, &s.PartitionKey, &s.SortingKey, &s.Query))
		s.Engine = strings.TrimPrefix(s.Engine, "Replicated")
		s.Query = strings.ReplaceAll(s.Query, database, "DB")
		s.Query = strings.ReplaceAll(s.Query, " ON CLUSTER tollgate", "")
		s.Query = replicatedArgs.ReplaceAllString(s.Query, "$1(")
		cols, err := tableColumns(ctx, db, database, s.Name)
		require.NoError(t, err)
		for _, c := range cols {
			s.Columns += c.name + " " + c.typ + ", "
		}
		out[s.Name] = s
	}
	require.NoError(t, rows.Err())
	return out
}

// The cluster builds the newest schema in one step (latestSchema) instead of replaying versions
// 1–6: on a single server, latestSchema must give exactly what the migrations give.
func TestLatestSchemaIsTheMigratedSchema(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	fresh := db.Database + "_latest"
	require.NoError(t, db.Exec(ctx, "CREATE DATABASE `"+fresh+"`"))
	t.Cleanup(func() { _ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+fresh+"`") })
	for _, stmt := range append([]string{schemaMigrationsDDL(fresh)}, latestSchema(fresh)...) {
		require.NoError(t, db.Exec(ctx, stmt))
	}
	want, got := schemaShapes(t, db, db.Database), schemaShapes(t, db, fresh)
	require.Len(t, want, 11)
	assert.Equal(t, want, got)
}

func TestOnCluster(t *testing.T) {
	got := onCluster(duplicatesDDL("db"), "db", "tollgate")
	assert.Contains(t, got, "CREATE TABLE IF NOT EXISTS `db`.`duplicates` ON CLUSTER `tollgate` (")
	assert.Contains(t, got, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/duplicates', '{replica}', resends)")
	got = onCluster(schemaMigrationsDDL("db"), "db", "tollgate")
	assert.Contains(t, got, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/schema_migrations', '{replica}') ORDER BY version")
	got = onCluster(ddlOf(v3Views("db"), "db", "decisions_daily_mv"), "db", "tollgate")
	assert.True(t, strings.HasPrefix(got, "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`decisions_daily_mv` ON CLUSTER `tollgate` TO `db`.`decisions_daily`"), got)
	assert.NotContains(t, got, "Replicated")
}
