package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The modern schema: what a fresh audit database looks like on ClickHouse 23 or newer
// (docs/audit.md "On ClickHouse 23 and newer"). Same tables, columns, partitions and sorting keys
// as the newest classic schema (migrate.go, migrate_v3.go), with three differences:
//
//   - LowCardinality(String) for the columns with few distinct values (destination, outcome,
//     reason, …): dictionary-encoded, smaller on disk and faster to filter and group by.
//   - decisions_by_user is a plain VIEW over decisions, not a second table filled by a
//     materialized view: decisions carries a projection ordered by user (by_user), so each
//     decision is written once and a lookup by user still reads only that user's granules. The
//     view deduplicates by GROUP BY over the dedup key (plus user_key, equal in every copy of a
//     row) rather than FINAL: a query with FINAL never uses a projection (checked on 26.9), while
//     a filter on a GROUP BY key is pushed below the aggregation into the read, where the
//     projection serves it. FINAL on a view is accepted and ignored, so every reader's SQL
//     (`FROM decisions_by_user FINAL WHERE user_key = ...`) is unchanged and reads one copy.
//   - retention is TTL (a column TTL on user_key resets it to '' after anonymize_after, a table
//     TTL deletes rows after drop_after), installed by the retention job from its configuration
//     (retention_ttl.go); ClickHouse applies it at merges.
//
// Since 24.8 a ReplacingMergeTree refuses projections unless deduplicate_merge_projection_mode
// says what a deduplicating merge does to them ('throw' by default): 'rebuild' keeps the
// projection equal to the table. ALTER ... DELETE/UPDATE (erasure) rebuild the projection
// anyway; tollgate issues no lightweight DELETE, so lightweight_mutation_projection_mode is not
// needed. Older servers do not know the setting, so it is sent only when
// system.merge_tree_settings lists it.
//
// Only a fresh database gets this shape: one made by an older tollgate, or on an older server,
// stays classic (converting in place means rewriting every decision; docs/audit.md describes the
// manual upgrade). The shape is read back from system.tables (DB.modern). Not on a cluster:
// clickhouse.cluster builds the classic schema (migrate_cluster.go).

// modernServer reports whether a server of this version (as `SELECT version()` prints it,
// "26.9.1.1") gets the modern schema for a fresh database: 23 or newer.
func modernServer(version string) bool {
	major, _, ok := strings.Cut(version, ".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(major)
	return err == nil && n >= 23
}

// lowCardinality are the String columns with few distinct values (destinations, outcomes,
// reasons, statuses, policy versions, replay run ids, the names of fields).
var lowCardinality = map[string]bool{
	"destination": true, "event_name": true, "outcome": true, "reason": true, "purpose": true,
	"jurisdiction": true, "policy_version": true, "run_id": true, "consent_source": true,
	"status": true, "error": true, "fields_sent": true, "fields_stripped": true,
}

// modernColumns returns cols with the modern types.
func modernColumns(cols []column) []column {
	out := make([]column, len(cols))
	for i, c := range cols {
		out[i] = c
		if lowCardinality[c.name] {
			out[i].typ = strings.Replace(c.typ, "String", "LowCardinality(String)", 1)
		}
	}
	return out
}

// modernSchema returns the CREATE statements of the modern schema, targets before the views
// that feed them. projectionMode says whether the server knows deduplicate_merge_projection_mode.
func modernSchema(database string, projectionMode bool) []string {
	t := func(name string) string { return qualified(database, name) }
	lc := "LowCardinality(String)"
	settings := []string{
		// A day partition expires as a whole (the TTL is a function of the day): drop the part
		// rather than rewrite it row by row.
		"ttl_only_drop_parts = 1",
		// TTL runs at merges, by default at most every 4 hours per part; retention is counted
		// in days, an hour is close enough and costs little.
		"merge_with_ttl_timeout = 3600",
	}
	if projectionMode {
		settings = append(settings, "deduplicate_merge_projection_mode = 'rebuild'")
	}
	var byUser []string
	for _, c := range decisionsColumns {
		switch c.name {
		case "destination", "event_id", "run_id", "user_key":
			byUser = append(byUser, "`"+c.name+"`")
		default:
			byUser = append(byUser, "any(`"+c.name+"`) AS `"+c.name+"`")
		}
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t("decisions") + ` (` + columnDefs(modernColumns(decisionsColumns)) + `,
			PROJECTION by_user (SELECT * ORDER BY user_key, destination, event_id, run_id))
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(decided_at)
			ORDER BY (destination, event_id, run_id)
			SETTINGS ` + strings.Join(settings, ", "),
		`CREATE TABLE IF NOT EXISTS ` + t("deliveries") + ` (` + columnDefs(modernColumns(deliveriesColumns)) + `)
			ENGINE = ReplacingMergeTree()
			PARTITION BY toDate(at)
			ORDER BY (destination, event_id, attempt, status, delivery_id)
			SETTINGS ` + strings.Join(settings[:2], ", "),
		`CREATE TABLE IF NOT EXISTS ` + t("decisions_daily") + ` (
			day Date, destination ` + lc + `, outcome ` + lc + `, reason ` + lc + `, run_id ` + lc + `,
			events AggregateFunction(uniqExact, String))
			ENGINE = AggregatingMergeTree()
			PARTITION BY toYYYYMM(day)
			ORDER BY (day, destination, reason, outcome, run_id)`,
		`CREATE TABLE IF NOT EXISTS ` + t("deliveries_daily") + ` (
			day Date, destination ` + lc + `, status ` + lc + `,
			attempts AggregateFunction(uniqExact, String, UInt16, String))
			ENGINE = AggregatingMergeTree()
			PARTITION BY toYYYYMM(day)
			ORDER BY (day, destination, status)`,
		`CREATE TABLE IF NOT EXISTS ` + t("erasures") + ` (` + columnDefs(erasuresColumns) + `)
			ENGINE = ReplacingMergeTree()
			ORDER BY user_hash`,
		duplicatesDDL(database),
		`CREATE VIEW IF NOT EXISTS ` + t("decisions_by_user") + ` AS
			SELECT ` + strings.Join(byUser, ", ") + `
			FROM ` + t("decisions") + `
			GROUP BY destination, event_id, run_id, user_key`,
		ddlOf(v3Views(database), database, "decisions_daily_mv"),
		v4DailyView(database),
	}
}

// migrateModern builds the modern schema in a fresh database and records versions 1 to
// SchemaVersion, as migrateCluster does: every statement is idempotent, so an interrupted run
// is simply run again. A later schema version must say what it does to the modern shape (and
// migrateOnModernServer then apply it to a database at version 6).
func migrateModern(ctx context.Context, conn driver.Conn, database string) error {
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.merge_tree_settings WHERE name = 'deduplicate_merge_projection_mode'`).Scan(&n); err != nil {
		return fmt.Errorf("read merge tree settings: %w", err)
	}
	for _, stmt := range modernSchema(database, n > 0) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("modern schema version %d: %w", SchemaVersion, err)
		}
	}
	for v := uint32(1); v <= SchemaVersion; v++ {
		if err := conn.Exec(ctx, `INSERT INTO `+qualified(database, "schema_migrations")+` (version, applied_at) SELECT toUInt32(?), now()`, v); err != nil {
			return fmt.Errorf("record migration %d: %w", v, err)
		}
	}
	return nil
}

// checkModernSchema is checkSchema for the modern shape. The view's column types follow from its
// SELECT (any() of a LowCardinality column is a String), so only its column names are checked.
func checkModernSchema(ctx context.Context, conn driver.Conn, database string) error {
	want := map[string][]column{
		"decisions":  modernColumns(decisionsColumns),
		"deliveries": modernColumns(deliveriesColumns),
		"erasures":   erasuresColumns,
		"duplicates": duplicatesColumns,
	}
	for table, want := range want {
		if err := checkColumns(ctx, conn, database, table, want); err != nil {
			return err
		}
	}
	have, err := tableColumns(ctx, conn, database, "decisions_by_user")
	if err != nil {
		return err
	}
	for _, c := range decisionsColumns {
		if !hasColumn(have, c.name) {
			return &schemaError{fmt.Sprintf("view %s.decisions_by_user has no column %s", database, c.name)}
		}
	}
	return nil
}

// Shapes of an audit database, cached in DB.shape.
const (
	shapeUnknown int32 = iota
	shapeClassic
	shapeModern
)

// modern reports whether the audit database has the modern shape: decisions_by_user is a view.
// On a server older than 23 it is classic without asking.
func (db *DB) modern(ctx context.Context) (bool, error) {
	switch atomic.LoadInt32(&db.shape) {
	case shapeClassic:
		return false, nil
	case shapeModern:
		return true, nil
	}
	if !modernServer(db.Version) {
		atomic.StoreInt32(&db.shape, shapeClassic)
		return false, nil
	}
	var n uint64
	if err := db.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = ? AND name = 'decisions_by_user' AND engine = 'View'`, db.Database).Scan(&n); err != nil {
		return false, fmt.Errorf("read schema shape: %w", err)
	}
	if n > 0 {
		atomic.StoreInt32(&db.shape, shapeModern)
		return true, nil
	}
	// Not cached: a database not created yet may still be made modern by Migrate.
	return false, nil
}
