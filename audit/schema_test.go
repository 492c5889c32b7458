package audit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tableShape is what must be equal between two builds of one table: engine (without
// "Replicated"), partition and sorting keys, columns in order, and the CREATE statement
// (create_table_query, SHOW CREATE's text) with the database name, ON CLUSTER and the Replicated*
// engine arguments taken out.
type tableShape struct {
	Name, Engine, PartitionKey, SortingKey, Columns, Query string
}

var replicatedArgs = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?`)

// normalised is create_table_query with the database, ON CLUSTER and Replicated* taken out.
func normalised(query, database string) string {
	query = strings.ReplaceAll(query, database, "DB")
	query = strings.ReplaceAll(query, " ON CLUSTER tollgate", "")
	return replicatedArgs.ReplaceAllString(query, "$1(")
}

// schemaShapes reads every table and view of a database on a server.
func schemaShapes(t testing.TB, db *DB, database string) map[string]tableShape {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT name, engine, partition_key, sorting_key, create_table_query FROM system.tables WHERE database = ?`, database)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]tableShape{}
	for rows.Next() {
		var s tableShape
		require.NoError(t, rows.Scan(&s.Name, &s.Engine, &s.PartitionKey, &s.SortingKey, &s.Query))
		s.Engine = strings.TrimPrefix(s.Engine, "Replicated")
		s.Query = normalised(s.Query, database)
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

// The one schema model, rendered for every version in every shape, is what the migrations leave:
// a database built at version v from the model has, table by table (system.columns and
// create_table_query), what a database built at the shape's first version and upgraded version
// by version has. On the test server (18.16) for the classic shape; on ClickHouse 26.x (chdb) for
// the classic and modern shapes; the cluster shape here by rendering, its statements being the
// classic ones ON CLUSTER with Replicated* engines, and on the replicas themselves (18.16) by
// make test-cluster: TestClusterSchemaRenderedIsMigrated, the same comparison.
func TestSchemaRenderedIsMigrated(t *testing.T) {
	t.Parallel()
	t.Run("cluster", func(t *testing.T) {
		for v := uint32(1); v <= SchemaVersion; v++ {
			classic := target{database: "db", shape: shapeClassic}
			cluster := target{database: "db", shape: shapeCluster, cluster: testClusterName}
			want, got := classic.create(schemaAt(v)), cluster.create(schemaAt(v))
			require.Len(t, got, len(want))
			for i := range got {
				require.Contains(t, got[i], " ON CLUSTER `tollgate`", "version %d", v)
				local := strings.ReplaceAll(got[i], " ON CLUSTER `tollgate`", "")
				require.Equal(t, want[i], replicatedArgs.ReplaceAllString(local, "$1("), "version %d", v)
			}
		}
	})
	t.Run("ClickHouse 18.16", func(t *testing.T) {
		t.Parallel()
		migrated := openAtVersion(t, 1)
		ctx := context.Background()
		for v := uint32(1); v <= SchemaVersion; v++ {
			require.NoError(t, migrateTo(ctx, migrated, migrated.Database, v))
			fresh := fmt.Sprintf("%s_v%d", migrated.Database, v)
			t.Cleanup(func() { _ = migrated.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+fresh+"`") })
			require.NoError(t, migrateTo(ctx, migrated, fresh, v))
			want := schemaShapes(t, migrated, migrated.Database)
			require.NotEmpty(t, want)
			assert.Equal(t, want, schemaShapes(t, migrated, fresh), "version %d", v)
		}
	})
	t.Run("chdb", func(t *testing.T) {
		if testing.Short() {
			t.Skip("installs chdb into a venv and runs ClickHouse 26.x in-process")
		}
		var stmts []recorded
		var pairs [][2]string
		for _, shape := range []int32{shapeClassic, shapeModern} {
			first := uint32(1)
			if shape == shapeModern {
				first = modernBase
			}
			migrated := fmt.Sprintf("tollgate_schema_%d_migrated", shape)
			for v := first; v <= SchemaVersion; v++ {
				applied := make([]uint32, 0, v)
				for a := uint32(1); a < v; a++ {
					applied = append(applied, a)
				}
				found := map[string]string{}
				if v > first {
					found["decisions"] = "any" // an existing database: upgraded
				}
				stmts = append(stmts, recordMigrate(t, target{database: migrated, shape: shape, projectionMode: true}, found, applied, v)...)
				stmts = append(stmts, shapeQueries(migrated, v)...)
				fresh := fmt.Sprintf("tollgate_schema_%d_v%d", shape, v)
				stmts = append(stmts, recordMigrate(t, target{database: fresh, shape: shape, projectionMode: true}, nil, nil, v)...)
				stmts = append(stmts, shapeQueries(fresh, v)...)
				pairs = append(pairs, [2]string{migrated, fresh})
			}
		}
		version, out := runChdbOK(t, stmts)
		t.Logf("ran %d statements on ClickHouse %s (chdb)", len(stmts), version)
		for _, p := range pairs {
			v := strings.TrimPrefix(p[1][strings.LastIndex(p[1], "_"):], "_v")
			for _, what := range []string{"columns", "tables"} {
				want, got := out[p[0]+" "+v+" "+what], out[p[1]+" "+v+" "+what]
				require.NotEmpty(t, want)
				assert.Equal(t, normalisedRows(want, p[0]), normalisedRows(got, p[1]), "%s %s of %s", what, v, p[1])
			}
		}
	})
}

// recordMigrate records what migrate sends for a database in which the versions applied are
// recorded and the tables found exist, to bring it to version v.
func recordMigrate(t *testing.T, r target, found map[string]string, applied []uint32, v uint32) []recorded {
	t.Helper()
	rec := &recorder{rows: map[string][][]any{}}
	for _, a := range applied {
		key := "FROM " + qualified(r.database, "schema_migrations")
		rec.rows[key] = append(rec.rows[key], []any{a})
	}
	var schemaErr *schemaError
	if err := migrate(context.Background(), rec, r, found, v); err != nil && !errors.As(err, &schemaErr) {
		require.NoError(t, err)
	}
	for i := range rec.stmts {
		rec.stmts[i].Name = fmt.Sprintf("%s version %d %s", r.database, v, rec.stmts[i].Name)
	}
	return rec.stmts
}

// shapeQueries read a database's columns and tables, for tableShape's comparison.
func shapeQueries(database string, v uint32) []recorded {
	name := fmt.Sprintf("%s %d ", database, v)
	return []recorded{
		chdbQuery(name+"columns", `SELECT table, name, type, default_kind, default_expression FROM system.columns
			WHERE database = '`+database+`' ORDER BY table, position`),
		chdbQuery(name+"tables", `SELECT name, engine, partition_key, sorting_key, create_table_query FROM system.tables
			WHERE database = '`+database+`' ORDER BY name`),
	}
}

func normalisedRows(rows [][]any, database string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = normalised(fmt.Sprint(r...), database)
	}
	return out
}

func TestOnCluster(t *testing.T) {
	r := target{database: "db", shape: shapeCluster, cluster: "tollgate"}
	got := r.createTable(newest.table("duplicates"), "duplicates")
	assert.Contains(t, got, "CREATE TABLE IF NOT EXISTS `db`.`duplicates` ON CLUSTER `tollgate` (")
	assert.Contains(t, got, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/duplicates', '{replica}', resends)")
	got = r.createTable(&schemaMigrations, "schema_migrations")
	assert.Contains(t, got, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/schema_migrations', '{replica}')\n\tORDER BY version")
	_, got = r.fillView(newest.table("decisions_daily"))
	assert.True(t, strings.HasPrefix(got, "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`decisions_daily_mv` ON CLUSTER `tollgate` TO `db`.`decisions_daily`"), got)
	assert.NotContains(t, got, "Replicated")
}

// The one shape detector: a cluster is the cluster shape, an existing database keeps the shape it
// has, a fresh one is modern on ClickHouse 23+.
func TestShapeOf(t *testing.T) {
	for _, tc := range []struct {
		found            map[string]string
		cluster, version string
		want             int32
	}{
		{nil, "", "18.16.1", shapeClassic},
		{nil, "", "26.9.1.1", shapeModern},
		{nil, "tollgate", "26.9.1.1", shapeCluster},
		{map[string]string{"decisions": "ReplicatedReplacingMergeTree"}, "tollgate", "18.16.1", shapeCluster},
		{map[string]string{"decisions": "ReplacingMergeTree"}, "", "26.9.1.1", shapeClassic},
		{map[string]string{"decisions": "ReplacingMergeTree", "decisions_by_user": "ReplacingMergeTree"}, "", "26.9.1.1", shapeClassic},
		{map[string]string{"decisions": "ReplacingMergeTree", "decisions_by_user": "View"}, "", "26.9.1.1", shapeModern},
	} {
		require.Equal(t, tc.want, shapeOf(tc.found, tc.cluster, tc.version), "%v %q %q", tc.found, tc.cluster, tc.version)
	}
}
