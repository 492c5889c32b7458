package audit

import (
	"strings"
)

// The shapes an audit database has, each rendered from the model (schema.go) by target:
//
//   - classic: what every ClickHouse since 18.16 runs. decisions_by_user is a second table,
//     ordered by user and filled by the materialized view decisions_by_user_mv on every insert
//     into decisions.
//
//   - modern: a fresh database on ClickHouse 23 or newer (docs/audit.md "On ClickHouse 23 and
//     newer"). LowCardinality(String) for the columns with few distinct values (dictionary-encoded,
//     smaller on disk and faster to filter and group by). decisions_by_user is a plain VIEW over
//     decisions, which carries a projection ordered by user (by_user): each decision is written
//     once and a lookup by user still reads only that user's granules. The view deduplicates by
//     GROUP BY over the dedup key (plus user_key, equal in every copy of a row) rather than
//     FINAL: a query with FINAL never uses a projection (checked on 26.9), while a filter on a
//     GROUP BY key is pushed below the aggregation into the read, where the projection serves
//     it. FINAL on a view is accepted and ignored, so every reader's SQL (`FROM
//     decisions_by_user FINAL WHERE user_key = ...`) is unchanged and reads one copy. Retention
//     is TTL made from the model's timeColumn and anonymize (retention_ttl.go), applied at
//     merges: ttl_only_drop_parts drops a day partition's parts whole, merge_with_ttl_timeout
//     lets TTL merges run hourly rather than every 4 hours. Since 24.8 a ReplacingMergeTree
//     refuses projections unless deduplicate_merge_projection_mode says what a deduplicating
//     merge does to them: 'rebuild' keeps the projection equal to the table (erasure's ALTER
//     ... DELETE rebuilds it anyway; tollgate issues no lightweight DELETE). Older servers do not
//     know the setting, so it is sent only when system.merge_tree_settings lists it. Only a fresh
//     database gets this shape: one made by an older tollgate or on an older server stays
//     classic (converting means rewriting every decision; docs/audit.md describes it by hand).
//
//   - cluster: clickhouse.cluster set (docs/audit.md "Replicated ClickHouse"). The classic shape
//     with every table the Replicated* twin of its single-server table (same columns, keys and
//     engine parameters) and every CREATE, DROP and RENAME sent ON CLUSTER, so each replica has
//     it. The replicas of a shard share one ZooKeeper path per table,
//     /clickhouse/tables/{shard}/<database>/<table> ({shard} and {replica} are the servers'
//     macros): the database name keeps two audit databases apart on one cluster. What
//     replicates by itself needs no ON CLUSTER: inserts (materialized views fire on the replica
//     that took the insert, whose targets replicate in turn), ALTER ... ADD COLUMN,
//     ALTER ... DELETE/UPDATE mutations and DROP PARTITION. So erasure and retention send the
//     same statements as on a single server, to whichever replica they are connected to.
const (
	shapeUnknown int32 = iota
	shapeClassic
	shapeModern
	shapeCluster
)

// target renders the model for one database in one shape.
type target struct {
	database string
	shape    int32
	// cluster names the cluster of the cluster shape.
	cluster string
	// projectionMode: the server knows deduplicate_merge_projection_mode (modern shape).
	projectionMode bool
}

// schemaMigrations records the applied versions; every shape has it, outside the versions.
var schemaMigrations = table{name: "schema_migrations", engine: "ReplacingMergeTree()", order: "version",
	columns: []modelColumn{typed("version", "UInt32"), typed("applied_at", "DateTime")}}

func (r target) name(n string) string { return qualified(r.database, n) }

// onCluster is what follows the name of a CREATE, DROP or RENAME on the cluster shape.
func (r target) onCluster() string {
	if r.shape != shapeCluster {
		return ""
	}
	return " ON CLUSTER `" + r.cluster + "`"
}

// typeOf is a column's type in this shape (as system.columns prints it).
func (r target) typeOf(c modelColumn) string {
	if r.shape == shapeModern && c.lowCard {
		return strings.Replace(c.typ, "String", "LowCardinality(String)", 1)
	}
	return c.typ
}

// columns are a table's columns as a table of this shape has them.
func (r target) columns(t *table) []column {
	out := make([]column, len(t.columns))
	for i, c := range t.columns {
		out[i] = column{c.name, r.typeOf(c)}
	}
	return out
}

func (r target) columnDef(c modelColumn) string {
	def := "`" + c.name + "` " + r.typeOf(c)
	if c.def != "" {
		def += " DEFAULT " + c.def
	}
	return def
}

// engine is the table's engine; on the cluster its Replicated* twin, the ZooKeeper path and
// replica name before the engine's own parameters.
func (r target) engine(t *table, name string) string {
	if r.shape != shapeCluster {
		return t.engine
	}
	head, params, _ := strings.Cut(t.engine, "(")
	args := "'/clickhouse/tables/{shard}/" + r.database + "/" + name + "', '{replica}'"
	if params = strings.TrimSuffix(params, ")"); params != "" {
		args += ", " + params
	}
	return "Replicated" + head + "(" + args + ")"
}

// createTable is the CREATE statement of t under name.
func (r target) createTable(t *table, name string) string {
	defs := make([]string, 0, len(t.columns)+1)
	for _, c := range t.columns {
		defs = append(defs, r.columnDef(c))
	}
	if r.shape == shapeModern && t.byUser != "" {
		defs = append(defs, "PROJECTION by_user (SELECT * ORDER BY "+t.byUser+")")
	}
	ddl := "CREATE TABLE IF NOT EXISTS " + r.name(name) + r.onCluster() + " (" + strings.Join(defs, ", ") + ")\n\tENGINE = " + r.engine(t, name)
	if t.partition != "" {
		ddl += "\n\tPARTITION BY " + t.partition
	}
	order := t.order
	if strings.Contains(order, ",") {
		order = "(" + order + ")"
	}
	ddl += "\n\tORDER BY " + order
	if settings := r.settings(t); len(settings) > 0 {
		ddl += "\n\tSETTINGS " + strings.Join(settings, ", ")
	}
	return ddl
}

func (r target) settings(t *table) []string {
	if r.shape != shapeModern || t.timeColumn == "" {
		return nil
	}
	settings := []string{"ttl_only_drop_parts = 1", "merge_with_ttl_timeout = 3600"}
	if t.byUser != "" && r.projectionMode {
		settings = append(settings, "deduplicate_merge_projection_mode = 'rebuild'")
	}
	return settings
}

// byUserCopy is the classic shape's by-user table of t: the same table ordered by user.
func byUserCopy(t *table) *table {
	c := *t
	c.name, c.order, c.byUser = t.byUserName(), t.byUser, ""
	return &c
}

// physical returns the tables of t in this shape under their names: t, and its by-user copy
// where that is a table.
func (r target) physical(t *table) []*table {
	if t.byUser == "" || r.shape == shapeModern {
		return []*table{t}
	}
	return []*table{t, byUserCopy(t)}
}

// byUserView is the view that makes t readable by user: on the modern shape a plain view
// grouping by the dedup key, elsewhere the materialized view filling the by-user copy.
func (r target) byUserView(t *table) (name, ddl string) {
	if r.shape != shapeModern {
		name = t.byUserName() + "_mv"
		return name, "CREATE MATERIALIZED VIEW IF NOT EXISTS " + r.name(name) + r.onCluster() + " TO " + r.name(t.byUserName()) +
			"\n\tAS SELECT " + columnNames(t.plainColumns()) + " FROM " + r.name(t.name)
	}
	keys := strings.Split(t.order, ", ")
	for _, k := range strings.Split(t.byUser, ", ") {
		if !strings.Contains(", "+t.order+", ", ", "+k+", ") {
			keys = append(keys, k)
		}
	}
	sel := make([]string, len(t.columns))
	for i, c := range t.columns {
		sel[i] = "any(`" + c.name + "`) AS `" + c.name + "`"
		if strings.Contains(", "+strings.Join(keys, ", ")+", ", ", "+c.name+", ") {
			sel[i] = "`" + c.name + "`"
		}
	}
	name = t.byUserName()
	return name, "CREATE VIEW IF NOT EXISTS " + r.name(name) + " AS\n\tSELECT " + strings.Join(sel, ", ") +
		"\n\tFROM " + r.name(t.name) + "\n\tGROUP BY " + strings.Join(keys, ", ")
}

// fillView is the materialized view filling the summary table t from its source.
func (r target) fillView(t *table) (name, ddl string) {
	name = t.name + "_mv"
	return name, "CREATE MATERIALIZED VIEW IF NOT EXISTS " + r.name(name) + r.onCluster() + " TO " + r.name(t.name) +
		"\n\tAS " + strings.ReplaceAll(t.fill, "{source}", r.name(t.source))
}

// views returns the views of s by name, in creation order.
func (r target) views(s *schema) (names, ddls []string) {
	for _, t := range s.tables {
		if t.byUser != "" {
			n, ddl := r.byUserView(t)
			names, ddls = append(names, n), append(ddls, ddl)
		}
	}
	for _, t := range s.tables {
		if t.fill != "" {
			n, ddl := r.fillView(t)
			names, ddls = append(names, n), append(ddls, ddl)
		}
	}
	return names, ddls
}

// create returns the statements that build schema s in an empty database (the database and
// schema_migrations excluded), tables before the views that read or fill them. Each is
// idempotent (IF NOT EXISTS).
func (r target) create(s *schema) []string {
	var stmts []string
	for _, t := range s.tables {
		for _, p := range r.physical(t) {
			stmts = append(stmts, r.createTable(p, p.name))
		}
	}
	_, views := r.views(s)
	return append(stmts, views...)
}

func (r target) createDatabase() string {
	return "CREATE DATABASE IF NOT EXISTS `" + r.database + "`" + r.onCluster()
}

func (r target) drop(name string) string {
	return "DROP TABLE IF EXISTS " + r.name(name) + r.onCluster()
}
