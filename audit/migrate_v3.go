package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Schema version 3: day partitions by server-side time, daily summaries, the erasure list.
//
// ClickHouse cannot change a table's partition key in place, so version 3 builds new tables under
// temporary names, swaps them in with one RENAME, copies the old rows over and drops the old
// tables. Every step looks at what exists first, so an interrupted run (or two writers starting
// at once) simply goes on where it stopped; the copies are idempotent because rows copied twice
// collapse like any other copy (and uniqExact states merge as sets). Writers of the old version
// still running during the upgrade insert by name, so after the swap they write to the new
// tables; an insert caught mid-swap lands in the old table before the copy that follows it.
//
// Materialized views are created after the swap, never renamed: on 18.16 a view follows a
// renamed source table until the server restarts, then re-attaches to the old name.

// erasuresColumns is the suppression list: the SHA-256 (hex) of each erased user key, so the
// list itself holds no user id. The audit writer drops late decisions of these users.
var erasuresColumns = []column{
	{"user_hash", "String"},
	{"erased_at", "DateTime"},
}

// v3TableDDL returns the CREATE statement of a day-partitioned table (decisions,
// decisions_by_user or deliveries) under the given name.
func v3TableDDL(database, table, name string) string {
	t := qualified(database, name)
	switch table {
	case "decisions":
		return `CREATE TABLE IF NOT EXISTS ` + t + ` (` + columnDefs(decisionsColumnsV5) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(decided_at)
			ORDER BY (destination, event_id, run_id)`
	case "decisions_by_user":
		return `CREATE TABLE IF NOT EXISTS ` + t + ` (` + columnDefs(decisionsColumnsV5) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(decided_at)
			ORDER BY (user_key, destination, event_id, run_id)`
	case "deliveries":
		return `CREATE TABLE IF NOT EXISTS ` + t + ` (` + columnDefs(deliveriesColumnsV3) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(at)
			ORDER BY (destination, event_id, attempt, status)`
	}
	panic("unknown table " + table)
}

// v3Rebuilt are the tables version 3 re-creates with day partitions.
var v3Rebuilt = []string{"decisions", "decisions_by_user", "deliveries"}

// v3Views returns the materialized views and summary tables of version 3, in creation order
// (targets before views).
func v3Views(database string) []string {
	t := func(name string) string { return qualified(database, name) }
	return []string{
		`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + t("decisions_by_user_mv") + ` TO ` + t("decisions_by_user") + `
			AS SELECT ` + columnNames(decisionsColumnsV5) + ` FROM ` + t("decisions"),
		`CREATE TABLE IF NOT EXISTS ` + t("decisions_daily") + ` (
			day Date, destination String, outcome String, reason String, run_id String,
			events AggregateFunction(uniqExact, String))
			ENGINE = AggregatingMergeTree()
			PARTITION BY toYYYYMM(day)
			ORDER BY (day, destination, reason, outcome, run_id)`,
		`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + t("decisions_daily_mv") + ` TO ` + t("decisions_daily") + `
			AS SELECT toDate(decided_at) AS day, destination, outcome, reason, run_id, uniqExactState(event_id) AS events
			FROM ` + t("decisions") + ` GROUP BY day, destination, outcome, reason, run_id`,
		`CREATE TABLE IF NOT EXISTS ` + t("deliveries_daily") + ` (
			day Date, destination String, status String,
			attempts AggregateFunction(uniqExact, String, UInt16))
			ENGINE = AggregatingMergeTree()
			PARTITION BY toYYYYMM(day)
			ORDER BY (day, destination, status)`,
		`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + t("deliveries_daily_mv") + ` TO ` + t("deliveries_daily") + `
			AS SELECT toDate(at) AS day, destination, status, uniqExactState(event_id, attempt) AS attempts
			FROM ` + t("deliveries") + ` GROUP BY day, destination, status`,
		`CREATE TABLE IF NOT EXISTS ` + t("erasures") + ` (` + columnDefs(erasuresColumns) + `)
			ENGINE = ReplacingMergeTree()
			ORDER BY user_hash`,
	}
}

func migrateDayPartitions(ctx context.Context, conn driver.Conn, database string) error {
	key, err := partitionKey(ctx, conn, database, "decisions")
	if err != nil {
		return err
	}
	if key != "toDate(decided_at)" {
		// Not swapped yet. The old view writes into the old by-user table: drop it first, so
		// nothing keeps feeding a table about to be dropped.
		if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(database, "decisions_by_user_mv")); err != nil {
			return fmt.Errorf("drop old view: %w", err)
		}
		var renames []string
		for _, table := range v3Rebuilt {
			if err := conn.Exec(ctx, v3TableDDL(database, table, table+"_v3")); err != nil {
				return fmt.Errorf("create %s_v3: %w", table, err)
			}
			renames = append(renames, qualified(database, table)+` TO `+qualified(database, table+"_v2"),
				qualified(database, table+"_v3")+` TO `+qualified(database, table))
		}
		if err := conn.Exec(ctx, `RENAME TABLE `+strings.Join(renames, ", ")); err != nil {
			return fmt.Errorf("swap in day-partitioned tables: %w", err)
		}
	}
	for _, stmt := range v3Views(database) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create summaries: %w", err)
		}
	}
	// Copy the old rows (through the views, which fill decisions_by_user and the summaries),
	// then drop the old tables: left behind, they would hold personal data that retention and
	// erasure no longer see.
	for _, table := range []string{"decisions", "deliveries"} {
		old := qualified(database, table+"_v2")
		exists, err := tableExists(ctx, conn, database, table+"_v2")
		if err != nil {
			return err
		}
		if !exists {
			continue
		}
		cols := decisionsColumnsV5
		if table == "deliveries" {
			cols = deliveriesColumnsV3
		}
		if err := conn.Exec(ctx, `INSERT INTO `+qualified(database, table)+` (`+columnNames(cols)+`)
			SELECT `+columnNames(cols)+` FROM `+old); err != nil {
			return fmt.Errorf("copy %s to the day-partitioned table: %w", table, err)
		}
		if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+old); err != nil {
			return fmt.Errorf("drop %s_v2: %w", table, err)
		}
	}
	// decisions_by_user was refilled from decisions by its view.
	if err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(database, "decisions_by_user_v2")); err != nil {
		return fmt.Errorf("drop decisions_by_user_v2: %w", err)
	}
	return nil
}

func partitionKey(ctx context.Context, conn driver.Conn, database, table string) (string, error) {
	var key string
	if err := conn.QueryRow(ctx, `SELECT partition_key FROM system.tables WHERE database = ? AND name = ?`, database, table).Scan(&key); err != nil {
		return "", fmt.Errorf("read partition key of %s: %w", table, err)
	}
	return key, nil
}

func tableExists(ctx context.Context, conn driver.Conn, database, table string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = ? AND name = ?`, database, table).Scan(&n); err != nil {
		return false, fmt.Errorf("look up table %s: %w", table, err)
	}
	return n > 0, nil
}
