package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migrations: the schema of schema.go brought to a database, version by version.
//
// A fresh database is built at once from the model, rendered for its shape (schema_render.go),
// and every version recorded in its schema_migrations table. A database made by an older
// tollgate is upgraded one version at a time (migrate_upgrade.go), each version recorded once
// applied. Every statement is idempotent or looks at what exists first, so a migration
// interrupted half-way is simply run again, and two processes migrating at once do no harm
// (versions are recorded in a ReplacingMergeTree).
//
// The modern and cluster shapes start at modernBase: no database of those shapes is older, so a
// fresh one is built at that version and upgraded from there (an interrupted creation by an older
// tollgate, which recorded the versions one by one, is thereby finished the same way).

// modernBase is the version the modern and cluster shapes were first built at.
const modernBase = 6

// Migrate creates the database if missing and applies every schema version it has not applied
// yet, in the database's shape (shapeOf). It then checks that the audit tables have the
// documented columns, so a table someone created by hand fails here and not at the first insert.
//
// On a cluster, a database whose versions are all recorded on the replica connected to is only
// checked, without any ON CLUSTER statement: those wait for every replica, so a writer
// (re)starting while one replica is away still starts.
func (db *DB) Migrate(ctx context.Context) error {
	if err := checkDatabase(db.Database); err != nil {
		return err
	}
	if db.Cluster != "" && !identifier.MatchString(db.Cluster) {
		return fmt.Errorf("cluster name %q: use letters, digits and _ only", db.Cluster)
	}
	found, err := inspect(ctx, db, db.Database)
	if err != nil {
		return err
	}
	r := target{database: db.Database, cluster: db.Cluster, shape: shapeOf(found, db.Cluster, db.Version)}
	if r.shape == shapeModern {
		var n uint64
		if err := db.QueryRow(ctx, `SELECT count() FROM system.merge_tree_settings WHERE name = 'deduplicate_merge_projection_mode'`).Scan(&n); err != nil {
			return fmt.Errorf("read merge tree settings: %w", err)
		}
		r.projectionMode = n > 0
	}
	// The shape is known from here on, also if a table then fails the column check.
	atomic.StoreInt32(&db.shape, r.shape)
	return migrate(ctx, db, r, found, SchemaVersion)
}

// migrateTo brings database to version upTo in the classic shape (tests build older schemas
// with it).
func migrateTo(ctx context.Context, conn driver.Conn, database string, upTo uint32) error {
	if err := checkDatabase(database); err != nil {
		return err
	}
	found, err := inspect(ctx, conn, database)
	if err != nil {
		return err
	}
	return migrate(ctx, conn, target{database: database, shape: shapeClassic}, found, upTo)
}

// migrate applies the versions up to upTo that the database has not applied, in r's shape;
// found is what inspect saw.
func migrate(ctx context.Context, conn driver.Conn, r target, found map[string]string, upTo uint32) error {
	// On one server the database and schema_migrations are made first (no-ops when they exist);
	// on a cluster only when a version is pending (ON CLUSTER waits for every replica).
	if r.shape != shapeCluster {
		if err := createMigrations(ctx, conn, r); err != nil {
			return err
		}
	}
	applied := map[uint32]bool{}
	if ok, err := tableExists(ctx, conn, r.database, schemaMigrations.name); err != nil {
		return err
	} else if ok {
		if applied, err = appliedVersions(ctx, conn, r.database); err != nil {
			return err
		}
	}
	pending := false
	for v := uint32(1); v <= upTo; v++ {
		pending = pending || !applied[v]
	}
	if pending && r.shape == shapeCluster {
		if err := createMigrations(ctx, conn, r); err != nil {
			return err
		}
	}
	from := freshFrom(r.shape, found, applied, upTo)
	if from > 0 {
		for _, stmt := range r.create(schemaAt(from)) {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("schema version %d: %w", from, err)
			}
		}
	}
	for v := uint32(1); v <= upTo; v++ {
		if applied[v] {
			continue
		}
		if v > from {
			if err := upgrade(ctx, conn, r, v); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		// INSERT ... SELECT, not VALUES: over the native protocol an INSERT with inline VALUES
		// makes 18.16 wait for data blocks the driver's Exec never sends (it hangs until the
		// read timeout). Batches (PrepareBatch) and INSERT ... SELECT work.
		if err := conn.Exec(ctx, `INSERT INTO `+r.name(schemaMigrations.name)+` (version, applied_at) SELECT toUInt32(?), now()`, v); err != nil {
			return fmt.Errorf("record migration %d: %w", v, err)
		}
	}
	return checkSchema(ctx, conn, r, schemaAt(upTo))
}

// createMigrations creates the database and its schema_migrations table.
func createMigrations(ctx context.Context, conn driver.Conn, r target) error {
	if err := conn.Exec(ctx, r.createDatabase()); err != nil {
		return fmt.Errorf("create database %s: %w", r.database, err)
	}
	if err := conn.Exec(ctx, r.createTable(&schemaMigrations, schemaMigrations.name)); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

// freshFrom is the version a database is built at from the model, or 0 when it is upgraded
// version by version instead: a classic database with no audit table and no version recorded
// is built at upTo, a modern or cluster database without modernBase at modernBase.
func freshFrom(shape int32, found map[string]string, applied map[uint32]bool, upTo uint32) uint32 {
	if shape == shapeClassic {
		if len(applied) == 0 && found["decisions"] == "" {
			return upTo
		}
		return 0
	}
	base := min(uint32(modernBase), upTo)
	if !applied[base] {
		return base
	}
	return 0
}

// inspect returns the engines of the tables that tell a database's shape (decisions,
// decisions_by_user), by name; a table missing is absent.
func inspect(ctx context.Context, conn driver.Conn, database string) (map[string]string, error) {
	tables, err := readRows(ctx, conn, "read schema shape", func(rows driver.Rows, t *column) error { return rows.Scan(&t.name, &t.typ) },
		`SELECT name, engine FROM system.tables WHERE database = ? AND name IN ('decisions', 'decisions_by_user')`, database)
	found := map[string]string{}
	for _, t := range tables {
		found[t.name] = t.typ
	}
	return found, err
}

// shapeOf is the one shape detector. A cluster is the cluster shape. A database whose
// decisions_by_user is a view is modern, one with a decisions table otherwise classic. A fresh
// database is modern on ClickHouse 23 or newer (modernServer), classic before.
func shapeOf(found map[string]string, cluster, version string) int32 {
	switch {
	case cluster != "":
		return shapeCluster
	case found["decisions_by_user"] == "View":
		return shapeModern
	case found["decisions"] != "" || !modernServer(version):
		return shapeClassic
	}
	return shapeModern
}

// modernServer reports whether a server of this version (as `SELECT version()` prints it,
// "26.9.1.1") gets the modern shape for a fresh database: 23 or newer.
func modernServer(version string) bool {
	major, _, ok := strings.Cut(version, ".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(major)
	return err == nil && n >= 23
}

// modern reports whether the audit database has the modern shape, as Migrate found it or, before
// Migrate ran in this process, as shapeOf says. A database not created yet is not cached: Migrate
// may still make it modern.
func (db *DB) modern(ctx context.Context) (bool, error) {
	if s := atomic.LoadInt32(&db.shape); s != shapeUnknown {
		return s == shapeModern, nil
	}
	if db.Cluster != "" || !modernServer(db.Version) {
		atomic.StoreInt32(&db.shape, shapeOf(nil, db.Cluster, db.Version))
		return false, nil
	}
	found, err := inspect(ctx, db, db.Database)
	if err != nil {
		return false, err
	}
	s := shapeOf(found, db.Cluster, db.Version)
	if len(found) > 0 {
		atomic.StoreInt32(&db.shape, s)
	}
	return s == shapeModern && len(found) > 0, nil
}

// checkSchema checks that the tables of schema s have their columns, with this shape's types.
// The modern by-user view's column types follow from its SELECT (any() of a LowCardinality column
// is a String), so only its column names are checked.
func checkSchema(ctx context.Context, conn driver.Conn, r target, s *schema) error {
	for _, t := range s.tables {
		for _, p := range r.physical(t) {
			if err := checkColumns(ctx, conn, r.database, p.name, r.columns(p)); err != nil {
				return err
			}
		}
		if t.byUser == "" || r.shape != shapeModern {
			continue
		}
		have, err := tableColumns(ctx, conn, r.database, t.byUserName())
		if err != nil {
			return err
		}
		for _, c := range t.columns {
			if !hasColumn(have, c.name) {
				return &schemaError{fmt.Sprintf("view %s.%s has no column %s", r.database, t.byUserName(), c.name)}
			}
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[uint32]bool, error) {
	vs, err := readRows(ctx, conn, "read schema_migrations", func(rows driver.Rows, v *uint32) error { return rows.Scan(v) },
		`SELECT DISTINCT version FROM `+qualified(database, "schema_migrations"))
	applied := map[uint32]bool{}
	for _, v := range vs {
		applied[v] = true
	}
	return applied, err
}

// tableColumns returns a table's columns in definition order (system.columns lists them in that
// order; 18.16 has no position column to sort by).
func tableColumns(ctx context.Context, conn driver.Conn, database, table string) ([]column, error) {
	return readRows(ctx, conn, "read columns of "+table, func(rows driver.Rows, c *column) error { return rows.Scan(&c.name, &c.typ) },
		`SELECT name, type FROM system.columns WHERE database = ? AND table = ?`, database, table)
}

func hasColumn(cols []column, name string) bool {
	for _, c := range cols {
		if c.name == name {
			return true
		}
	}
	return false
}

func tableExists(ctx context.Context, conn driver.Conn, database, table string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = ? AND name = ?`, database, table).Scan(&n); err != nil {
		return false, fmt.Errorf("look up table %s: %w", table, err)
	}
	return n > 0, nil
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
