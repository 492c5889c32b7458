package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Tests on replicated ClickHouse (clickhouse.cluster), run by `make test-cluster` against
// `make cluster-up`'s two replicas: TOLLGATE_TEST_CLICKHOUSE_CLUSTER names them comma-separated
// (replica 1 first). Unset, they skip: `make test` runs on one server. Their databases are
// tollgate_cluster_<run>_<n>, created and dropped ON CLUSTER `tollgate`.

const testClusterName = "tollgate"

func clusterReplicas(t testing.TB) []string {
	t.Helper()
	v := os.Getenv("TOLLGATE_TEST_CLICKHOUSE_CLUSTER")
	if v == "" {
		t.Skip("needs the replicated ClickHouse of make cluster-up (TOLLGATE_TEST_CLICKHOUSE_CLUSTER)")
	}
	addrs := strings.Split(v, ",")
	require.Len(t, addrs, 2, "TOLLGATE_TEST_CLICKHOUSE_CLUSTER names the two replicas")
	return addrs
}

// clusterConfig is testConfig on the cluster: both replicas, clickhouse.cluster set, a database
// of its own.
func clusterConfig(t testing.TB) *config.Config {
	t.Helper()
	addrs := clusterReplicas(t)
	cfg := testConfig(t)
	cfg.ClickHouse.Addr = strings.Join(addrs, ",")
	cfg.ClickHouse.Cluster = testClusterName
	cfg.ClickHouse.Database = fmt.Sprintf("tollgate_cluster_%s_%d", testRun, testDBSeq.Add(1))
	return cfg
}

// replicaDBs migrates cfg's database on the cluster (through replica 1) and returns one handle
// per replica, each connected to that replica alone. The database is dropped ON CLUSTER at the end.
func replicaDBs(t testing.TB, cfg *config.Config) []*DB {
	t.Helper()
	dbs := openReplicas(t, cfg)
	require.NoError(t, dbs[0].Migrate(context.Background()))
	dropOnClusterAfter(t, dbs[0], cfg.ClickHouse.Database)
	return dbs
}

// openReplicas returns one handle per replica, each connected to that replica alone.
func openReplicas(t testing.TB, cfg *config.Config) []*DB {
	t.Helper()
	var dbs []*DB
	for _, addr := range clusterReplicas(t) {
		c := *cfg
		c.ClickHouse.Addr = addr
		db, err := Open(context.Background(), &c)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		dbs = append(dbs, db)
	}
	return dbs
}

// dropOnClusterAfter drops database ON CLUSTER when the test ends.
func dropOnClusterAfter(t testing.TB, db *DB, database string) {
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+database+"` ON CLUSTER `"+testClusterName+"`")
	})
}

// migrateClusterTo is migrateTo in the cluster shape: database, ON CLUSTER, at version upTo.
func migrateClusterTo(ctx context.Context, db *DB, database string, upTo uint32) error {
	found, err := inspect(ctx, db, database)
	if err != nil {
		return err
	}
	return migrate(ctx, db, clusterTarget(database), found, upTo)
}

func clusterTarget(database string) target {
	return target{database: database, shape: shapeCluster, cluster: testClusterName}
}

// TestClusterSchemaRenderedIsMigrated is TestSchemaRenderedIsMigrated's cluster shape on the
// replicas themselves: at every version of the shape (modernBase on: no cluster database is
// older), the model rendered for the cluster at that version has, table by table (system.columns
// and create_table_query) and on each replica, what a cluster database built at modernBase and
// upgraded version by version has.
func TestClusterSchemaRenderedIsMigrated(t *testing.T) {
	cfg := clusterConfig(t)
	dbs := openReplicas(t, cfg)
	ctx := context.Background()
	migrated := cfg.ClickHouse.Database
	dropOnClusterAfter(t, dbs[0], migrated)
	for v := uint32(modernBase); v <= SchemaVersion; v++ {
		require.NoError(t, migrateClusterTo(ctx, dbs[0], migrated, v), "upgrade to version %d", v)
		rendered := clusterTarget(fmt.Sprintf("%s_v%d", migrated, v))
		dropOnClusterAfter(t, dbs[0], rendered.database)
		require.NoError(t, createMigrations(ctx, dbs[0], rendered))
		for _, stmt := range rendered.create(schemaAt(v)) {
			require.NoError(t, dbs[0].Exec(ctx, stmt), "version %d rendered: %s", v, stmt)
		}
		for i, db := range dbs {
			want := schemaShapes(t, db, migrated)
			require.NotEmpty(t, want, "replica %d, version %d", i+1, v)
			assert.Equal(t, want, schemaShapes(t, db, rendered.database), "replica %d, version %d", i+1, v)
		}
	}
}

// finalCount counts a table's rows under FINAL on one replica.
func finalCount(t testing.TB, db *DB, table string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count() FROM "+db.table(table)+" FINAL").Scan(&n))
	return n
}

// Migrating a cluster creates the replicated twin of every single-server table on both
// replicas, records versions 1–6 like a single server, and running it again changes nothing.
func TestClusterMigrations(t *testing.T) {
	cfg := clusterConfig(t)
	dbs := replicaDBs(t, cfg)
	ctx := context.Background()
	// Again, through the two-address handle the writer and the CLI use: nothing to do.
	both, err := Open(ctx, cfg)
	require.NoError(t, err)
	defer both.Close()
	require.NoError(t, both.Migrate(ctx))
	require.NoError(t, both.Migrate(ctx))

	// The single-server schema to compare with, on replica 1, not replicated.
	single := dbs[0].Database + "_single"
	require.NoError(t, migrateTo(ctx, dbs[0], single, SchemaVersion))
	defer func() { _ = dbs[0].Exec(context.Background(), "DROP DATABASE IF EXISTS `"+single+"`") }()
	want := schemaShapes(t, dbs[0], single)
	require.Len(t, want, 11) // ten tables and the view filling decisions_by_user

	for i, db := range dbs {
		require.Equal(t, want, schemaShapes(t, db, db.Database), "replica %d", i+1)
		rows, err := db.Query(ctx, `SELECT name, engine FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree'`, db.Database)
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			var name, engine string
			require.NoError(t, rows.Scan(&name, &engine))
			assert.True(t, strings.HasPrefix(engine, "Replicated"), "replica %d: %s is %s", i+1, name, engine)
			n++
		}
		rows.Close()
		require.Equal(t, 10, n, "replica %d: ten tables of data", i+1)
		require.Eventually(t, func() bool {
			applied, err := appliedVersions(ctx, db, db.Database)
			return err == nil && len(applied) == int(SchemaVersion)
		}, 30*time.Second, 100*time.Millisecond, "replica %d: versions 1-%d recorded", i+1, SchemaVersion)
	}
	var versions uint64
	require.NoError(t, dbs[1].QueryRow(ctx, "SELECT count() FROM "+dbs[1].table("schema_migrations")+" FINAL").Scan(&versions))
	require.Equal(t, uint64(SchemaVersion), versions, "each version recorded once")
}

// clusterSample is the docs/audit.md example data (TestDocumentedQueries) plus a resend and an
// erasure, so every table has rows.
func clusterSample(now time.Time) ([]schemas.Decision, []schemas.Delivery) {
	dec := func(id, user, dest, outcome, reason, run string, fields ...string) schemas.Decision {
		return schemas.Decision{DecisionID: id + "/" + dest + "/" + run, EventID: id, UserKey: user, Destination: dest,
			EventName: "purchase", EventTimeMs: now.UnixMilli(), DecidedMs: now.UnixMilli(), Outcome: outcome, Reason: reason,
			Purpose: "marketing", Jurisdiction: "EU", FieldsSent: fields, FieldsStripped: []string{"properties.email"},
			PolicyVersion: "v1", RunID: run, ConsentSource: "event", GPC: reason == "gpc"}
	}
	ds := []schemas.Decision{
		dec("e1", "u-42", "meta", "forwarded", "consented", "", "context.page_url", "properties.fbclid"),
		dec("e1", "u-42", "ga4", "blocked", "no_consent", ""),
		dec("e2", "u-42", "meta", "blocked", "gpc", ""),
		dec("e3", "u-42", "meta", "forwarded", "consented", "", "context.page_url"),
		dec("e4", "u-7", "ga4", "forwarded", "consented", "", "context.page_url"),
		dec("e1", "u-42", "meta", "forwarded", "consented", "RUN_ID", "context.page_url"),
		dec("e2", "u-42", "meta", "blocked", "gpc", "RUN_ID"),
	}
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	dl := []schemas.Delivery{
		{EventID: "e1", Destination: "meta", Attempt: 1, Status: "retrying", HTTPStatus: 503, Error: "http_503", LatencyMs: 80, AtMs: at(time.Second), DeliveryID: "d1"},
		{EventID: "e1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 40, AtMs: at(3 * time.Second), DeliveryID: "d2"},
		{EventID: "e3", Destination: "meta", Attempt: 1, Status: "dead_lettered", HTTPStatus: 400, Error: "http_400", LatencyMs: 30, AtMs: at(time.Second), DeliveryID: "d3"},
		{EventID: "e4", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 20, AtMs: at(time.Second), DeliveryID: "d4"},
	}
	return ds, dl
}

// Rows inserted through replica 1 are read on replica 2, and every read tollgate makes (the CLI's
// summary, user, blocked and diff; erasure's recipients; the §6 dedup form with FINAL; the
// daily summaries; every query of docs/audit.md) gives the same answer on both replicas.
func TestClusterReadsOnEitherReplica(t *testing.T) {
	cfg := clusterConfig(t)
	dbs := replicaDBs(t, cfg)
	ctx := context.Background()
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	ds, dl := clusterSample(now)
	require.NoError(t, dbs[0].InsertDecisions(ctx, ds))
	require.NoError(t, dbs[0].InsertDecisions(ctx, ds[:3])) // copies collapse on every replica
	require.NoError(t, dbs[0].InsertDeliveries(ctx, dl))
	require.NoError(t, dbs[0].Exec(ctx, `INSERT INTO `+dbs[0].table("erasures")+` (user_hash, erased_at) SELECT ?, now()`, userHash("u-gone")))
	_, err := dbs[0].CountDays(ctx, now.Add(48*time.Hour)) // the sample's day has ended: its counts are read too
	require.NoError(t, err)

	for i, db := range dbs {
		require.Eventually(t, func() bool {
			return finalCount(t, db, "decisions") == uint64(len(ds)) && finalCount(t, db, "decisions_by_user") == uint64(len(ds)) &&
				finalCount(t, db, "deliveries") == uint64(len(dl)) && finalCount(t, db, "erasures") == 1 &&
				countRaw(t, db, "decisions_counts") > 0 && countRaw(t, db, "deliveries_counts") > 0
		}, 30*time.Second, 100*time.Millisecond, "replica %d has every row", i+1)
	}

	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	require.GreaterOrEqual(t, len(blocks), 10)

	// reads returns every read's answer on one replica, printed, to compare between replicas.
	reads := func(db *DB) map[string]string {
		out := map[string]string{}
		put := func(name string, v any, err error) {
			require.NoError(t, err, name)
			b, err := json.Marshal(v)
			require.NoError(t, err, name)
			out[name] = string(b)
		}
		v1, err := db.Summary(ctx)
		put("summary", v1, err)
		v2, err := db.DeliverySummary(ctx)
		put("delivery summary", v2, err)
		v3, err := db.CountDecisions(ctx, "")
		put("count decisions", v3, err)
		v4, err := db.CountDeliveries(ctx)
		put("count deliveries", v4, err)
		v5, err := db.UserDecisions(ctx, "u-42", 0)
		put("user decisions", v5, err)
		v6, err := db.UserReport(ctx, "u-42", 0)
		put("user report", v6, err)
		v7, err := db.Blocked(ctx, now.Add(-time.Hour))
		put("blocked", v7, err)
		v8, err := db.Diff(ctx, "RUN_ID", 0)
		put("diff", v8, err)
		v9, err := db.UserRecipients(ctx, "u-42")
		put("recipients", v9, err)
		v10, _, err := db.ErasedSince(ctx, now.Add(-time.Hour))
		put("erased since", v10, err)
		// §6: one row per (event_id, destination, run_id) under FINAL.
		var keys, rows uint64
		require.NoError(t, db.QueryRow(ctx, `SELECT uniqExact(event_id, destination, run_id), count() FROM `+db.table("decisions")+` FINAL`).Scan(&keys, &rows))
		put("§6 FINAL", [2]uint64{keys, rows}, nil)
		require.Equal(t, keys, rows, "§6: one row per key under FINAL")
		for i, b := range blocks {
			q := strings.ReplaceAll(b[1], "tollgate.", "`"+db.Database+"`.")
			rs, err := db.Query(ctx, q)
			require.NoError(t, err, "query %d of docs/audit.md", i+1)
			var all []string
			cols := rs.ColumnTypes()
			for rs.Next() {
				vals := make([]any, len(cols))
				for j, c := range cols {
					vals[j] = newScanTarget(c.ScanType())
				}
				require.NoError(t, rs.Scan(vals...))
				all = append(all, fmt.Sprint(derefAll(vals)...))
			}
			require.NoError(t, rs.Err())
			rs.Close()
			require.NotEmpty(t, all, "query %d of docs/audit.md returns rows", i+1)
			put(fmt.Sprintf("docs query %d", i+1), all, nil)
		}
		return out
	}
	one, two := reads(dbs[0]), reads(dbs[1])
	require.Equal(t, one, two, "replica 1 and replica 2 answer alike")
	require.Contains(t, one["recipients"], "meta")
}

// Erasure and retention send mutations and DROP PARTITION to one replica; the replicated tables
// carry them to the other.
func TestClusterErasureAndRetention(t *testing.T) {
	cfg := clusterConfig(t)
	dbs := replicaDBs(t, cfg)
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	old := now.Add(-10 * 24 * time.Hour)
	ds, dl := clusterSample(now.Add(-time.Hour))
	aged, _ := clusterSample(old)
	for i := range aged {
		aged[i].DecisionID += "/old"
		aged[i].EventID += "-old" // another key: FINAL collapses equal keys across partitions
		aged[i].UserKey = "u-old"
	}
	require.NoError(t, dbs[0].InsertDecisions(ctx, append(ds, aged...)))
	require.NoError(t, dbs[0].InsertDeliveries(ctx, dl))
	for i, db := range dbs {
		require.Eventually(t, func() bool {
			return finalCount(t, db, "decisions") == uint64(len(ds)+len(aged)) && finalCount(t, db, "deliveries") == uint64(len(dl))
		}, 30*time.Second, 100*time.Millisecond, "replica %d: decisions %d, deliveries %d", i+1, finalCount(t, db, "decisions"), finalCount(t, db, "deliveries"))
	}

	// Erase through replica 2, watch replica 1.
	require.NoError(t, dbs[1].EraseUser(ctx, "u-42"))
	userRows := func(db *DB, table string) uint64 {
		var n uint64
		require.NoError(t, db.QueryRow(ctx, `SELECT count() FROM `+db.table(table)+` WHERE user_key = 'u-42'`).Scan(&n))
		return n
	}
	for i, db := range dbs {
		require.Eventually(t, func() bool {
			return userRows(db, "decisions") == 0 && userRows(db, "decisions_by_user") == 0 &&
				countRaw(t, db, "deliveries") == 1 && finalCount(t, db, "erasures") == 1 // e4 of u-7 stays
		}, 30*time.Second, 100*time.Millisecond, "replica %d: u-42 erased", i+1)
	}

	// Retention through replica 1: the days of ten days ago are dropped everywhere.
	res, err := dbs[0].ApplyRetention(ctx, now, 2*24*time.Hour, 5*24*time.Hour)
	require.NoError(t, err)
	require.NotEmpty(t, res.Dropped)
	for i, db := range dbs {
		require.Eventually(t, func() bool {
			var n uint64
			require.NoError(t, db.QueryRow(ctx, `SELECT count() FROM `+db.table("decisions")+` WHERE user_key = 'u-old' OR decided_at < ?`, now.Add(-5*24*time.Hour)).Scan(&n))
			return n == 0 && countRaw(t, db, "decisions") == 1 // e4 of u-7
		}, 30*time.Second, 100*time.Millisecond, "replica %d: old days dropped", i+1)
	}
}

// newScanTarget returns a pointer to a new value of a column's scan type.
func newScanTarget(t reflect.Type) any { return reflect.New(t).Interface() }

// derefAll returns the values the scan targets point to.
func derefAll(ptrs []any) []any {
	out := make([]any, len(ptrs))
	for i, p := range ptrs {
		out[i] = reflect.ValueOf(p).Elem().Interface()
	}
	return out
}

// The upgrade of docs/audit.md "Replicated ClickHouse": a single-server database's rows copied
// with the documented INSERT … SELECT statements into a replicated one are on both replicas, and
// the views filled decisions_by_user and the daily tables.
func TestClusterUpgradeFromSingleServer(t *testing.T) {
	cfg := clusterConfig(t)
	dbs := replicaDBs(t, cfg)
	ctx := context.Background()
	single := dbs[0].Database + "_single"
	require.NoError(t, migrateTo(ctx, dbs[0], single, SchemaVersion))
	defer func() { _ = dbs[0].Exec(context.Background(), "DROP DATABASE IF EXISTS `"+single+"`") }()
	old := *dbs[0]
	old.Database = single
	ds, dl := clusterSample(time.Now().Add(-time.Hour))
	require.NoError(t, old.InsertDecisions(ctx, ds))
	require.NoError(t, old.InsertDeliveries(ctx, dl))
	require.NoError(t, old.Exec(ctx, `INSERT INTO `+old.table("erasures")+` (user_hash, erased_at) SELECT ?, now()`, userHash("u-gone")))

	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	copies := regexp.MustCompile(`(?m)^\s*(INSERT INTO tollgate_r\.\w+ SELECT \* FROM tollgate\.\w+);$`).FindAllStringSubmatch(string(doc), -1)
	require.Len(t, copies, 4, "docs/audit.md copies four tables")
	for _, c := range copies {
		q := strings.ReplaceAll(c[1], "tollgate_r.", "`"+dbs[0].Database+"`.")
		q = strings.ReplaceAll(q, "tollgate.", "`"+single+"`.")
		require.NoError(t, dbs[0].Exec(ctx, q), q)
	}
	for i, db := range dbs {
		require.Eventually(t, func() bool {
			for _, table := range []string{"decisions", "decisions_by_user", "deliveries", "erasures"} {
				if finalCount(t, db, table) != finalCount(t, &old, table) {
					return false
				}
			}
			return true
		}, 30*time.Second, 100*time.Millisecond, "replica %d holds the copied rows", i+1)
	}
}
