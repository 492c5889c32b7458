package audit

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Replicated ClickHouse (clickhouse.cluster; docs/audit.md "Replicated ClickHouse").
//
// On a cluster every table is the Replicated* twin of its single-server table (same columns,
// partition key, sorting key and engine parameters), created ON CLUSTER so each replica of the
// cluster has it. The replicas of a shard share one ZooKeeper path per table,
// /clickhouse/tables/{shard}/<database>/<table> (the servers' macros fill in {shard}, and
// {replica} names the replica): the database name keeps two audit databases (tests, staging)
// apart on one cluster.
//
// A replicated database starts at the newest schema: clickhouse.cluster is newer than schema
// version 6, so no replicated database of an older version exists, and replaying versions 1–6
// (renames and drops of tables) through ZooKeeper would only add ways to fail. latestSchema is
// what versions 1–6 leave on a single server, statement for statement the same DDL, and a
// test compares the two. The versions are then recorded in schema_migrations exactly as on a
// single server, so the version check, the column check and a later migration work the same.
// A later schema version must say how it runs on a cluster (ON CLUSTER for DDL; mutations and
// inserts replicate by themselves).
//
// What replicates by itself: inserts (to every replica of the table, and materialized views fire
// on the replica that took the insert, whose targets replicate in turn), ALTER ... DELETE/UPDATE
// mutations and DROP PARTITION (a replicated table's log carries them). So erasure and retention
// send the same statements on a cluster as on a single server, to whichever replica they are
// connected to; only DDL (CREATE, DROP TABLE, RENAME) needs ON CLUSTER.

// latestSchema returns the CREATE statements that build the newest schema version in an empty
// database (the database and schema_migrations excluded), targets before the views that feed them.
func latestSchema(database string) []string {
	// Version 6 added columns to decisions and decisions_by_user, which versions 3 and 2 created
	// with the columns of their time; ADD COLUMN gave them DEFAULT '' (migrateConsentProvenance).
	defs := columnDefs(decisionsColumnsV5)
	for _, c := range decisionsProvenance {
		defs += ", `" + c.name + "` " + c.typ + " DEFAULT ''"
	}
	v6 := func(ddl string) string {
		ddl = strings.ReplaceAll(ddl, columnDefs(decisionsColumnsV5), defs)
		return strings.ReplaceAll(ddl, columnNames(decisionsColumnsV5), columnNames(decisionsColumns))
	}
	views := v3Views(database)
	return []string{
		v6(v3TableDDL(database, "decisions", "decisions")),
		v6(v3TableDDL(database, "decisions_by_user", "decisions_by_user")),
		v4DeliveriesDDL(database, "deliveries"),
		ddlOf(views, database, "decisions_daily"),
		v4DailyDDL(database, "deliveries_daily"),
		ddlOf(views, database, "erasures"),
		duplicatesDDL(database),
		v6(ddlOf(views, database, "decisions_by_user_mv")),
		ddlOf(views, database, "decisions_daily_mv"),
		v4DailyView(database),
	}
}

// ddlOf picks the statement creating the named table or view.
func ddlOf(stmts []string, database, name string) string {
	for _, s := range stmts {
		for _, head := range []string{"CREATE TABLE IF NOT EXISTS ", "CREATE MATERIALIZED VIEW IF NOT EXISTS "} {
			if strings.HasPrefix(s, head+qualified(database, name)+" ") {
				return s
			}
		}
	}
	panic("no statement creates " + name)
}

func schemaMigrationsDDL(database string) string {
	return `CREATE TABLE IF NOT EXISTS ` + qualified(database, "schema_migrations") + ` (version UInt32, applied_at DateTime)
		ENGINE = ReplacingMergeTree() ORDER BY version`
}

var (
	createHead = regexp.MustCompile("^(CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS `[^`]+`\\.`([^`]+)`)")
	engine     = regexp.MustCompile(`ENGINE = (\w*MergeTree)\(([^)]*)\)`)
)

// onCluster turns a single-server CREATE statement into its cluster form: ON CLUSTER after the
// name, and a *MergeTree engine replaced by its Replicated* twin with the table's ZooKeeper path
// and replica name before the engine's own parameters.
func onCluster(ddl, database, cluster string) string {
	m := createHead.FindStringSubmatch(ddl)
	if m == nil {
		panic("not a CREATE statement: " + ddl)
	}
	table := m[2]
	ddl = m[1] + " ON CLUSTER `" + cluster + "`" + ddl[len(m[1]):]
	return engine.ReplaceAllStringFunc(ddl, func(e string) string {
		p := engine.FindStringSubmatch(e)
		args := "'/clickhouse/tables/{shard}/" + database + "/" + table + "', '{replica}'"
		if p[2] != "" {
			args += ", " + p[2]
		}
		return "ENGINE = Replicated" + p[1] + "(" + args + ")"
	})
}

// migrateCluster is Migrate on a cluster: the database and the newest schema, ON CLUSTER, with
// Replicated* engines, then every version recorded. A database whose versions are all recorded
// on the replica connected to is only checked, without any ON CLUSTER statement: those wait for
// every replica, so a writer (re)starting while one replica is away still starts.
func migrateCluster(ctx context.Context, conn driver.Conn, database, cluster string) error {
	if err := checkDatabase(database); err != nil {
		return err
	}
	if !identifier.MatchString(cluster) {
		return fmt.Errorf("cluster name %q: use letters, digits and _ only", cluster)
	}
	applied := map[uint32]bool{}
	if ok, err := tableExists(ctx, conn, database, "schema_migrations"); err != nil {
		return err
	} else if ok {
		if applied, err = appliedVersions(ctx, conn, database); err != nil {
			return err
		}
	}
	complete := true
	for v := uint32(1); v <= SchemaVersion; v++ {
		complete = complete && applied[v]
	}
	if !complete {
		if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"` ON CLUSTER `"+cluster+"`"); err != nil {
			return fmt.Errorf("create database %s on cluster %s: %w", database, cluster, err)
		}
		for _, stmt := range append([]string{schemaMigrationsDDL(database)}, latestSchema(database)...) {
			if err := conn.Exec(ctx, onCluster(stmt, database, cluster)); err != nil {
				return fmt.Errorf("schema version %d on cluster %s: %w", SchemaVersion, cluster, err)
			}
		}
		for v := uint32(1); v <= SchemaVersion; v++ {
			if applied[v] {
				continue
			}
			if err := conn.Exec(ctx, `INSERT INTO `+qualified(database, "schema_migrations")+` (version, applied_at) SELECT toUInt32(?), now()`, v); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
		}
	}
	return checkSchema(ctx, conn, database, SchemaVersion)
}
