package audit

import (
	"slices"
	"strings"
)

// The audit schema as one model: the tables of the first version, then each later version as a
// list of changes. Everything else is derived from it: the schema of any version (schemaAt), its
// CREATE statements in each shape (schema_render.go: classic, modern, cluster), the upgrade of an
// existing database by one version (migrate_upgrade.go), the column check, the insert column
// lists (decisionsColumns, …) and the modern shape's retention TTL (retention_ttl.go).
// docs/audit.md is the user-facing description; keep the two in step (docs_test.go checks the
// columns). audit/README.md "Adding a column" says how to add one.
//
// Table design (all of it within what ClickHouse 18.16 supports: no TTL, DateTime64, Map or
// LowCardinality on the classic shape):
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
// lets a "since T" query skip old data. Versions 1 and 2 partitioned by month of event_time.
//
// decisions is ordered by (destination, event_id, run_id) — the documented dedup key with the
// destination first, for "what got blocked where" questions. The reason cannot join the key (a
// re-decision of the same event with another reason would then be a second row); blocked
// counts by destination and reason come from decisions_daily instead. "What did we send about
// user X" needs the user first: decisions_by_user holds the same rows ordered by user (table.byUser;
// a second table filled by a materialized view, or on the modern shape a projection and a view).
// Erasure must delete from both.
//
// decisions_daily and deliveries_daily are the daily summaries: AggregatingMergeTree tables fed
// by materialized views, holding per day and group the exact set of distinct keys
// (uniqExactState), so a row inserted twice counts once there too. Read them with
// uniqExactMerge (docs/audit.md).

// column is a column as a table has it: its name and its type as system.columns prints it.
type column struct{ name, typ string }

// modelColumn is a column of the model.
type modelColumn struct {
	column
	// def is the DEFAULT of a column added to an existing table (ALTER TABLE ... ADD COLUMN):
	// the value the rows from before it read. Empty for the columns a table was created with.
	def string
	// lowCard marks a String column with few distinct values (destinations, outcomes, reasons,
	// statuses, policy versions, run ids, field names): LowCardinality on the modern shape.
	lowCard bool
}

// table is one table of the model.
type table struct {
	name    string
	columns []modelColumn
	// engine with its parameters, as written after ENGINE =: "ReplacingMergeTree()".
	engine string
	// partition is the PARTITION BY expression ("" for none), order the ORDER BY clause, both as
	// ClickHouse prints them back in system.tables (order without its parentheses).
	partition, order string
	// byUser, if set, is the sorting key of a copy of the rows ordered by user, readable as
	// <name>_by_user (schema_render.go says how each shape keeps it).
	byUser string
	// source and fill, if set, make this a summary table: the materialized view <name>_mv
	// inserts fill (a SELECT with {source} for the source table's name) of every insert into
	// source.
	source, fill string
	// timeColumn is the server-side time retention counts from, and anonymize the column
	// anonymize_after resets ("" for none); the modern shape's TTL is made of them.
	timeColumn, anonymize string
}

// byUserName is the name decisions_by_user is read by.
func (t *table) byUserName() string { return t.name + "_by_user" }

// column returns the column of that name (nil if none).
func (t *table) column(name string) *modelColumn {
	for i := range t.columns {
		if t.columns[i].name == name {
			return &t.columns[i]
		}
	}
	return nil
}

// plainColumns returns the columns as a table of the classic shape has them.
func (t *table) plainColumns() []column {
	out := make([]column, len(t.columns))
	for i, c := range t.columns {
		out[i] = c.column
	}
	return out
}

// changeKind says how a change reaches a database already at the version before.
type changeKind int

const (
	// created: a new table (CREATE ... IF NOT EXISTS).
	created changeKind = iota
	// copiedByUser: a table gains its by-user copy, filled with the rows from before.
	copiedByUser
	// addedColumn: ALTER TABLE ... ADD COLUMN, the views reading the table re-created.
	addedColumn
	// rebuilt: the partition key, sorting key or a column type changed, which ClickHouse cannot
	// change in place: a new table is swapped in and the old rows copied (migrate_upgrade.go).
	rebuilt
	// unfilled: a summary table's materialized view is dropped; the table keeps its rows.
	unfilled
)

// change is one step of a schema version.
type change struct {
	kind  changeKind
	table string
	// create is the new table (created); edit changes the table in the schema (the others).
	create *table
	edit   func(t *table)
}

func create(t table) change { return change{kind: created, table: t.name, create: &t} }

// add adds a column to a table, with the DEFAULT the existing rows read (an empty string for a String, 0 for a number).
func add(tableName string, c modelColumn) change {
	return change{kind: addedColumn, table: tableName, edit: func(t *table) { t.columns = append(t.columns, c) }}
}

// copyByUser gives a table its copy ordered by user (table.byUser), filled with the rows from
// before.
func copyByUser(tableName, order string) change {
	return change{kind: copiedByUser, table: tableName, edit: func(t *table) { t.byUser = order }}
}

// rebuild changes a table's keys or column types (edit), which takes a new table.
func rebuild(tableName string, edit func(t *table)) change {
	return change{kind: rebuilt, table: tableName, edit: edit}
}

// unfill stops filling a summary table: its view is dropped, its rows stay.
func unfill(tableName string) change {
	return change{kind: unfilled, table: tableName, edit: func(t *table) { t.source, t.fill = "", "" }}
}

// Column constructors of the model: str and lowStr are Strings (lowStr with few distinct
// values), typed any other type (an Array(String) of field names counts as few distinct values).
func str(name string) modelColumn { return modelColumn{column: column{name, "String"}} }
func lowStr(name string) modelColumn {
	return modelColumn{column: column{name, "String"}, lowCard: true}
}
func typed(name, typ string) modelColumn {
	return modelColumn{column: column{name, typ}, lowCard: typ == "Array(String)"}
}

// withDefault is c added to an existing table, rows from before reading def.
func withDefault(c modelColumn, def string) modelColumn { c.def = def; return c }

// versions are the schema versions: versions[v-1] is version v. Never edit a released version:
// add one (audit/README.md "Adding a column").
var versions = [][]change{
	// 1: the two audit tables (docs/audit.md "Tables").
	{create(table{name: "decisions", engine: "ReplacingMergeTree()",
		partition: "toYYYYMM(event_time)", order: "destination, event_id, run_id",
		timeColumn: "decided_at", anonymize: "user_key",
		columns: []modelColumn{str("decision_id"), str("event_id"), str("user_key"), lowStr("destination"),
			lowStr("event_name"), typed("event_time", "DateTime"), typed("decided_at", "DateTime"), lowStr("outcome"),
			lowStr("reason"), lowStr("purpose"), lowStr("jurisdiction"), typed("gpc", "UInt8"),
			typed("fields_sent", "Array(String)"), typed("fields_stripped", "Array(String)"),
			lowStr("policy_version"), lowStr("run_id")}}),
		create(table{name: "deliveries", engine: "ReplacingMergeTree()",
			partition: "toYYYYMM(at)", order: "destination, event_id, attempt, status", timeColumn: "at",
			columns: []modelColumn{str("event_id"), lowStr("destination"), typed("attempt", "UInt16"), lowStr("status"),
				typed("http_status", "UInt16"), lowStr("error"), typed("latency_ms", "UInt32"), typed("at", "DateTime")}})},
	// 2: decisions by user, for "what did we send about user X".
	{copyByUser("decisions", "user_key, destination, event_id, run_id")},
	// 3: day partitions by server-side time, daily summaries, the erasure list.
	{rebuild("decisions", func(t *table) { t.partition = "toDate(decided_at)" }),
		rebuild("deliveries", func(t *table) { t.partition = "toDate(at)" }),
		create(table{name: "decisions_daily", engine: "AggregatingMergeTree()", partition: "toYYYYMM(day)",
			order:  "day, destination, reason, outcome, run_id",
			source: "decisions", fill: `SELECT toDate(decided_at) AS day, destination, outcome, reason, run_id, uniqExactState(event_id) AS events
				FROM {source} GROUP BY day, destination, outcome, reason, run_id`,
			columns: []modelColumn{typed("day", "Date"), lowStr("destination"), lowStr("outcome"), lowStr("reason"), lowStr("run_id"),
				typed("events", "AggregateFunction(uniqExact, String)")}}),
		create(table{name: "deliveries_daily", engine: "AggregatingMergeTree()", partition: "toYYYYMM(day)",
			order:  "day, destination, status",
			source: "deliveries", fill: `SELECT toDate(at) AS day, destination, status, uniqExactState(event_id, attempt) AS attempts
				FROM {source} GROUP BY day, destination, status`,
			columns: []modelColumn{typed("day", "Date"), lowStr("destination"), lowStr("status"),
				typed("attempts", "AggregateFunction(uniqExact, String, UInt16)")}}),
		// The SHA-256 (hex) of each erased user key, so the list itself holds no user id.
		create(table{name: "erasures", engine: "ReplacingMergeTree()", order: "user_hash",
			columns: []modelColumn{str("user_hash"), typed("erased_at", "DateTime")}})},
	// 4: one deliveries row per real request. Up to version 3 two requests carrying the same
	// event with the same attempt number (a client resend before dedup, a sink killed between the
	// vendor's answer and its offset commit) collapsed into one row. delivery_id, unique per
	// attempt, joins the sorting key; the same audit record inserted twice is still one row, and
	// deliveries_daily counts distinct (event_id, attempt, delivery_id). Rows from before have ''.
	{rebuild("deliveries", func(t *table) {
		t.columns = append(t.columns, str("delivery_id"))
		t.order += ", delivery_id"
	}),
		rebuild("deliveries_daily", func(t *table) {
			t.column("attempts").typ = "AggregateFunction(uniqExact, String, UInt16, String)"
			t.fill = `SELECT toDate(at) AS day, destination, status, uniqExactState(event_id, attempt, delivery_id) AS attempts
				FROM {source} GROUP BY day, destination, status`
		})},
	// 5: one row per (user_key, event_id) the consent processor absorbed resends of, with the
	// running count: ReplacingMergeTree(resends) keeps the latest under FINAL, argMax(…, resends)
	// reads it without.
	{create(table{name: "duplicates", engine: "ReplacingMergeTree(resends)", partition: "toYYYYMM(first_seen)",
		order: "user_key, event_id",
		columns: []modelColumn{str("event_id"), str("user_key"), typed("first_seen", "DateTime"),
			typed("last_seen", "DateTime"), typed("resends", "UInt32")}})},
	// 6: where a consent choice came from (docs/consent.md "Consent signals from CMPs"): the
	// sources that made it and SHA-256 of the TC and GPP strings.
	{add("decisions", withDefault(lowStr("consent_source"), "''")),
		add("decisions", withDefault(str("consent_proof"), "''"))},
	// 7: the replay run a delivery attempt belongs to: '' for live traffic, the run id for an
	// attempt of `tollgate repair` (CONTRACT §9), so `audit summary --run` counts a repair's.
	{add("deliveries", withDefault(lowStr("run_id"), "''"))},
	// 8: how long an event waited for the user's choice under the policy's hold (CONTRACT §9
	// "Pre-consent hold"): 0 when it was not held, and for every row from before.
	{add("decisions", withDefault(typed("held_ms", "UInt32"), "0"))},
	// 9: each ended day's counts (counts.go), which `audit summary` adds up. The daily
	// summaries' uniqExact states held every event id (16 bytes a decision) and a summary read
	// them all into memory at once; their views are dropped, the tables kept for the days
	// retention has dropped from decisions and deliveries. A count never goes down: the largest
	// copy of a group's row stays.
	{unfill("decisions_daily"), unfill("deliveries_daily"),
		create(table{name: "decisions_counts", engine: "ReplacingMergeTree(events)", partition: "toYYYYMM(day)",
			order: "day, destination, outcome, reason, run_id",
			columns: []modelColumn{typed("day", "Date"), lowStr("destination"), lowStr("outcome"), lowStr("reason"), lowStr("run_id"),
				typed("events", "UInt64"), typed("blocks", "UInt64"), typed("counted_at", "DateTime")}}),
		create(table{name: "deliveries_counts", engine: "ReplacingMergeTree(attempts)", partition: "toYYYYMM(day)",
			order: "day, destination, status, run_id",
			columns: []modelColumn{typed("day", "Date"), lowStr("destination"), lowStr("status"), lowStr("run_id"),
				typed("attempts", "UInt64"), typed("blocks", "UInt64"), typed("counted_at", "DateTime")}})},
}

// SchemaVersion is the newest schema version Migrate applies.
var SchemaVersion = uint32(len(versions))

// schema is the model at one version: its tables in creation order.
type schema struct {
	version uint32
	tables  []*table
}

func (s *schema) table(name string) *table {
	for _, t := range s.tables {
		if t.name == name {
			return t
		}
	}
	panic("schema: no table " + name)
}

// schemaAt returns the schema of version v (1 to SchemaVersion): version 1's tables with the
// changes of versions 2 to v applied.
func schemaAt(v uint32) *schema {
	s := &schema{version: v}
	for _, changes := range versions[:v] {
		for _, c := range changes {
			if c.kind == created {
				t := *c.create
				t.columns = slices.Clone(t.columns)
				s.tables = append(s.tables, &t)
				continue
			}
			t := s.table(c.table)
			t.columns = slices.Clone(t.columns) // not shared with an older version's schema
			c.edit(t)
		}
	}
	return s
}

// The columns the writer inserts, in table order (docs/audit.md "Tables").
var (
	newest            = schemaAt(SchemaVersion)
	decisionsColumns  = newest.table("decisions").plainColumns()
	deliveriesColumns = newest.table("deliveries").plainColumns()
	erasuresColumns   = newest.table("erasures").plainColumns()
	duplicatesColumns = newest.table("duplicates").plainColumns()
)

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = "`" + c.name + "`"
	}
	return strings.Join(names, ", ")
}
