package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table design (all within what ClickHouse 18.16 supports: no TTL, DateTime64, Map or
// LowCardinality). docs/audit.md is the user-facing description; keep the two in step.
//
// Both audit tables are ReplacingMergeTree. Their ORDER BY is their dedup key: rows with equal
// keys collapse into one at merge time (within a partition), and SELECT ... FINAL collapses them
// at read time — across partitions too (checked on 18.16; newer servers do the same unless
// do_not_merge_across_partitions_select_final is set, which tollgate never does). A replayed
// topic, a restarted writer re-reading records it had inserted but not yet committed, or a second
// writer after a rebalance therefore never double counts with FINAL. The copies of one key are
// copies of one Kafka record, so which one survives does not matter (no version column).
//
// Partitions are per day of the server-side time (schema version 3): decisions by
// toDate(decided_at), deliveries by toDate(at). Both are stamped by tollgate itself, so they
// move forward with the clock and a day's partition is written on that day only — unlike the
// client-chosen event_time, whose scattered or hostile values would create thousands of
// partitions. Day partitions are what retention drops (DROP PARTITION is instant), and what
// lets a "since T" query skip old data. Versions 1 and 2 partitioned by month of event_time;
// version 3 rebuilds the tables (migrateDayPartitions).
//
// decisions is ordered by (destination, event_id, run_id) — the documented dedup key with the
// destination first, for "what got blocked where" questions. The reason cannot join the key (a
// re-decision of the same event with another reason would then be a second row); blocked
// counts by destination and reason come from decisions_daily instead. "What did we send about
// user X" needs the user first: decisions_by_user holds the same rows ordered by user, filled by
// a materialized view on every insert into decisions. Erasure must delete from both tables.
//
// decisions_daily and deliveries_daily are the daily summaries: AggregatingMergeTree tables fed
// by materialized views, holding per day and group the exact set of distinct keys
// (uniqExactState), so a row inserted twice counts once there too. Read them with
// uniqExactMerge (docs/audit.md).

// migration is one schema version: statements that are each idempotent on their own (IF NOT
// EXISTS), so a migration interrupted half-way is simply re-run.
type migration struct {
	version    uint32
	statements []string
	// run, if set, runs after the statements; it must be safe to re-run after an interruption.
	run func(ctx context.Context, conn driver.Conn, database string) error
}

// decisionsColumns and deliveriesColumns are the documented columns (docs/audit.md), in order.
var (
	// decisionsColumnsV5 are the columns of decisions up to schema version 5 (the released
	// migrations 1–3 create and copy exactly these); version 6 adds the consent provenance.
	decisionsColumnsV5 = []column{
		{"decision_id", "String"},
		{"event_id", "String"},
		{"user_key", "String"},
		{"destination", "String"},
		{"event_name", "String"},
		{"event_time", "DateTime"},
		{"decided_at", "DateTime"},
		{"outcome", "String"},
		{"reason", "String"},
		{"purpose", "String"},
		{"jurisdiction", "String"},
		{"gpc", "UInt8"},
		{"fields_sent", "Array(String)"},
		{"fields_stripped", "Array(String)"},
		{"policy_version", "String"},
		{"run_id", "String"},
	}
	decisionsColumns = append(slices.Clip(decisionsColumnsV5), decisionsProvenance...)
	// deliveriesColumnsV3 are the columns of deliveries up to schema version 3 (the released
	// migrations 1–3 create and copy exactly these); version 4 adds delivery_id.
	deliveriesColumnsV3 = []column{
		{"event_id", "String"},
		{"destination", "String"},
		{"attempt", "UInt16"},
		{"status", "String"},
		{"http_status", "UInt16"},
		{"error", "String"},
		{"latency_ms", "UInt32"},
		{"at", "DateTime"},
	}
	deliveriesColumns = append(slices.Clip(deliveriesColumnsV3), column{"delivery_id", "String"})
)

type column struct{ name, typ string }

func columnDefs(cols []column) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = "`" + c.name + "` " + c.typ
	}
	return strings.Join(defs, ", ")
}

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = "`" + c.name + "`"
	}
	return strings.Join(names, ", ")
}

// migrations returns every schema version of a database, oldest first. Never edit a released
// version: add a new one.
func migrations(database string) []migration {
	t := func(name string) string { return qualified(database, name) }
	return []migration{
		{version: 1, statements: []string{
			`CREATE TABLE IF NOT EXISTS ` + t("decisions") + ` (` + columnDefs(decisionsColumnsV5) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toYYYYMM(event_time)
			ORDER BY (destination, event_id, run_id)`,
			`CREATE TABLE IF NOT EXISTS ` + t("deliveries") + ` (` + columnDefs(deliveriesColumnsV3) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toYYYYMM(at)
			ORDER BY (destination, event_id, attempt, status)`,
		}},
		{version: 2, statements: []string{
			// The target table first: the view refers to it.
			`CREATE TABLE IF NOT EXISTS ` + t("decisions_by_user") + ` (` + columnDefs(decisionsColumnsV5) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toYYYYMM(event_time)
			ORDER BY (user_key, destination, event_id, run_id)`,
			// The view only sees rows inserted after it exists; copy what came before it. Both
			// statements are safe to repeat: the copy's duplicates collapse like any replay's.
			`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + t("decisions_by_user_mv") + ` TO ` + t("decisions_by_user") + `
			AS SELECT ` + columnNames(decisionsColumnsV5) + ` FROM ` + t("decisions"),
			`INSERT INTO ` + t("decisions_by_user") + ` (` + columnNames(decisionsColumnsV5) + `)
			SELECT ` + columnNames(decisionsColumnsV5) + ` FROM ` + t("decisions"),
		}},
		{3, nil, migrateDayPartitions},
		{4, nil, migrateDeliveryIDs},
		{version: 5, statements: []string{duplicatesDDL(database)}},
		{6, nil, migrateConsentProvenance},
	}
}

// SchemaVersion is the newest schema version Migrate applies.
const SchemaVersion = 6

// Migrate creates the database if missing and applies every schema version it has not applied
// yet, recording each in the database's schema_migrations table. Running it again, or from two
// processes at once, is harmless: every statement is idempotent and versions are recorded in a
// ReplacingMergeTree. It then checks that the audit tables have the documented columns, so a
// table someone created by hand fails here and not at the first insert.
//
// With clickhouse.cluster set it migrates the cluster instead (migrate_cluster.go).
func (db *DB) Migrate(ctx context.Context) error {
	if db.Cluster != "" {
		return migrateCluster(ctx, db, db.Database, db.Cluster)
	}
	return migrateTo(ctx, db, db.Database, SchemaVersion)
}

// migrateTo applies the versions up to upTo (tests use it to build an older schema).
func migrateTo(ctx context.Context, conn driver.Conn, database string, upTo uint32) error {
	if err := checkDatabase(database); err != nil {
		return err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`"); err != nil {
		return fmt.Errorf("create database %s: %w", database, err)
	}
	sm := qualified(database, "schema_migrations")
	if err := conn.Exec(ctx, schemaMigrationsDDL(database)); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return err
	}
	for _, m := range migrations(database) {
		if applied[m.version] || m.version > upTo {
			continue
		}
		for _, stmt := range m.statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", m.version, err)
			}
		}
		if m.run != nil {
			if err := m.run(ctx, conn, database); err != nil {
				return fmt.Errorf("migration %d: %w", m.version, err)
			}
		}
		// INSERT ... SELECT, not VALUES: over the native protocol an INSERT with inline VALUES
		// makes 18.16 wait for data blocks the driver's Exec never sends (it hangs until the
		// read timeout). Batches (PrepareBatch) and INSERT ... SELECT work.
		if err := conn.Exec(ctx, `INSERT INTO `+sm+` (version, applied_at) SELECT toUInt32(?), now()`, m.version); err != nil {
			return fmt.Errorf("record migration %d: %w", m.version, err)
		}
	}
	return checkSchema(ctx, conn, database, upTo)
}

// checkSchema checks that the audit tables of schema version upTo have their documented columns.
func checkSchema(ctx context.Context, conn driver.Conn, database string, upTo uint32) error {
	want := map[string][]column{"decisions": decisionsColumnsV5, "deliveries": deliveriesColumnsV3, "decisions_by_user": decisionsColumnsV5}
	if upTo >= 3 {
		want["erasures"] = erasuresColumns
	}
	if upTo >= 4 {
		want["deliveries"] = deliveriesColumns
	}
	if upTo >= 5 {
		want["duplicates"] = duplicatesColumns
	}
	if upTo >= 6 {
		want["decisions"], want["decisions_by_user"] = decisionsColumns, decisionsColumns
	}
	for table, want := range want {
		if err := checkColumns(ctx, conn, database, table, want); err != nil {
			return err
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT version FROM `+qualified(database, "schema_migrations"))
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// tableColumns returns a table's columns in definition order (system.columns lists them in that
// order; 18.16 has no position column to sort by).
func tableColumns(ctx context.Context, conn driver.Conn, database, table string) ([]column, error) {
	rows, err := conn.Query(ctx, `SELECT name, type FROM system.columns WHERE database = ? AND table = ?`, database, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// schemaError says an existing table does not have the columns this package writes: retrying
// cannot fix it.
type schemaError struct{ msg string }

func (e *schemaError) Error() string { return e.msg }

// checkColumns reports a column of want that the table lacks or has with another type. Extra
// columns are allowed (the documented tables may only be extended).
func checkColumns(ctx context.Context, conn driver.Conn, database, table string, want []column) error {
	have, err := tableColumns(ctx, conn, database, table)
	if err != nil {
		return err
	}
	types := make(map[string]string, len(have))
	for _, c := range have {
		types[c.name] = c.typ
	}
	for _, c := range want {
		switch typ, ok := types[c.name]; {
		case !ok:
			return &schemaError{fmt.Sprintf("table %s.%s has no column %s (%s)", database, table, c.name, c.typ)}
		case typ != c.typ:
			return &schemaError{fmt.Sprintf("table %s.%s: column %s is %s, want %s", database, table, c.name, typ, c.typ)}
		}
	}
	return nil
}
