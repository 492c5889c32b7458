package audit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// upgrade brings a database of version v-1 to version v, in r's shape, from the changes the
// model lists for v. Every step looks at what exists first or is idempotent, so an interrupted
// upgrade (or two writers starting at once) simply goes on where it stopped:
//
//  1. Rebuilt tables (a new partition key, sorting key or column type, which ClickHouse cannot
//     change in place): the views writing into or reading from them are dropped, so nothing keeps
//     feeding a table about to be dropped; the new tables are created as <table>_v<v> and swapped
//     in with one RENAME, the old ones kept as <table>_v<v-1>. Writers of the old version still
//     running insert by name, so after the swap they write to the new tables; an insert caught
//     mid-swap lands in the old table before the copy that follows.
//  2. Added columns: ALTER TABLE ... ADD COLUMN where missing (18.16 has no ADD COLUMN IF NOT
//     EXISTS), with the column's DEFAULT for the rows from before; a view keeps the column list it
//     was created with, so the by-user view is re-created.
//  3. The views version v no longer has are dropped (a summary no longer filled keeps its table
//     and rows). Every table and view of version v that does not exist is created (new tables,
//     the views dropped in step 1). Materialized views are created after a swap, never renamed: on 18.16 a
//     view follows a renamed source table until the server restarts, then re-attaches to the old
//     name.
//  4. A new by-user copy is filled with the rows from before (the view only sees later inserts).
//  5. The old rows of rebuilt tables are copied into the new ones (through the views, which fill
//     the by-user copy and the summaries) and the old tables dropped: left behind, they would hold
//     personal data that retention and erasure no longer see.
//
// Rows copied twice collapse like any other copy (and uniqExact states merge as sets).
func upgrade(ctx context.Context, conn driver.Conn, r target, v uint32) error {
	prev, next := schemaAt(v-1), schemaAt(v)
	rebuiltNames, err := swapInRebuilt(ctx, conn, r, prev, next, v)
	if err != nil {
		return err
	}
	if err := addColumns(ctx, conn, r, prev, next, v); err != nil {
		return err
	}
	prevViews, _ := r.views(prev)
	nextViews, _ := r.views(next)
	for _, name := range prevViews {
		if !slices.Contains(nextViews, name) {
			if err := conn.Exec(ctx, r.drop(name)); err != nil {
				return fmt.Errorf("drop view %s: %w", name, err)
			}
		}
	}
	for _, stmt := range r.create(next) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	for _, c := range versions[v-1] {
		if c.kind != copiedByUser || r.shape == shapeModern {
			continue
		}
		t := next.table(c.table)
		cols := columnNames(t.plainColumns())
		if err := conn.Exec(ctx, `INSERT INTO `+r.name(t.byUserName())+` (`+cols+`) SELECT `+cols+` FROM `+r.name(t.name)); err != nil {
			return fmt.Errorf("fill %s: %w", t.byUserName(), err)
		}
	}
	return copyRebuilt(ctx, conn, r, prev, next, v, rebuiltNames)
}

// rebuiltTables returns the tables version v rebuilds in r's shape (a by-user copy is rebuilt
// with its table), each as version v-1 and as version v have it.
func rebuiltTables(r target, prev, next *schema, v uint32) (before, after []*table) {
	for _, c := range versions[v-1] {
		if c.kind == rebuilt {
			before = append(before, r.physical(prev.table(c.table))...)
			after = append(after, r.physical(next.table(c.table))...)
		}
	}
	return before, after
}

// swapInRebuilt is step 1; it returns the names of the tables version v rebuilds.
func swapInRebuilt(ctx context.Context, conn driver.Conn, r target, prev, next *schema, v uint32) ([]string, error) {
	var names, renames []string
	var pending []*table
	before, after := rebuiltTables(r, prev, next, v)
	for i, t := range after {
		names = append(names, t.name)
		done, err := isRebuilt(ctx, conn, r, before[i], t)
		if err != nil {
			return nil, err
		}
		if !done {
			pending = append(pending, t)
		}
	}
	if len(pending) == 0 {
		return names, nil
	}
	for _, view := range r.viewsTouching(prev, names) {
		if err := conn.Exec(ctx, r.drop(view)); err != nil {
			return nil, fmt.Errorf("drop %s: %w", view, err)
		}
	}
	for _, t := range pending {
		newName, oldName := t.name+"_v"+strconv.Itoa(int(v)), t.name+"_v"+strconv.Itoa(int(v-1))
		if err := conn.Exec(ctx, r.createTable(t, newName)); err != nil {
			return nil, fmt.Errorf("create %s: %w", newName, err)
		}
		renames = append(renames, r.name(t.name)+" TO "+r.name(oldName), r.name(newName)+" TO "+r.name(t.name))
	}
	if err := conn.Exec(ctx, "RENAME TABLE "+strings.Join(renames, ", ")+r.onCluster()); err != nil {
		return nil, fmt.Errorf("swap in the tables of version %d: %w", v, err)
	}
	return names, nil
}

// isRebuilt reports whether the table already has what the rebuild from before to after
// changes: the partition key, the sorting key, the columns new or of a new type (a rebuild done
// before an interruption, or a database already past this version).
func isRebuilt(ctx context.Context, conn driver.Conn, r target, before, after *table) (bool, error) {
	var partition, sorting string
	if err := conn.QueryRow(ctx, `SELECT partition_key, sorting_key FROM system.tables WHERE database = ? AND name = ?`,
		r.database, after.name).Scan(&partition, &sorting); err != nil {
		return false, fmt.Errorf("read keys of %s: %w", after.name, err)
	}
	if before.partition != after.partition && partition != after.partition || before.order != after.order && sorting != after.order {
		return false, nil
	}
	have, err := tableColumns(ctx, conn, r.database, after.name)
	if err != nil {
		return false, err
	}
	old := r.columns(before)
	for _, c := range r.columns(after) {
		if !slices.Contains(old, c) && !slices.Contains(have, c) {
			return false, nil
		}
	}
	return true, nil
}

// addColumns is step 2.
func addColumns(ctx context.Context, conn driver.Conn, r target, prev, next *schema, v uint32) error {
	done := map[string]bool{}
	for _, c := range versions[v-1] {
		if c.kind != addedColumn || done[c.table] {
			continue
		}
		done[c.table] = true
		t, before := next.table(c.table), prev.table(c.table)
		var added []modelColumn
		for _, col := range t.columns {
			if before.column(col.name) == nil {
				added = append(added, col)
			}
		}
		for _, p := range r.physical(t) {
			have, err := tableColumns(ctx, conn, r.database, p.name)
			if err != nil {
				return err
			}
			for _, col := range added {
				if hasColumn(have, col.name) {
					continue
				}
				if err := conn.Exec(ctx, `ALTER TABLE `+r.name(p.name)+` ADD COLUMN `+r.columnDef(col)); err != nil {
					return fmt.Errorf("add %s.%s: %w", p.name, col.name, err)
				}
			}
		}
		if t.byUser != "" {
			if err := recreateByUserView(ctx, conn, r, t, added); err != nil {
				return err
			}
		}
	}
	return nil
}

// recreateByUserView re-creates the view reading t by user if it lacks a column of added.
func recreateByUserView(ctx context.Context, conn driver.Conn, r target, t *table, added []modelColumn) error {
	name, ddl := r.byUserView(t)
	have, err := tableColumns(ctx, conn, r.database, name)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(added, func(c modelColumn) bool { return !hasColumn(have, c.name) }) {
		return nil
	}
	if err := conn.Exec(ctx, r.drop(name)); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if r.shape == shapeModern {
		return nil
	}
	// A row inserted while the view was being swapped reached the table only; copy the recent
	// ones (a writer inserts within seconds of deciding). Copies collapse under FINAL.
	cols := columnNames(t.plainColumns())
	if err := conn.Exec(ctx, `INSERT INTO `+r.name(t.byUserName())+` (`+cols+`) SELECT `+cols+` FROM `+r.name(t.name)+
		` WHERE `+t.timeColumn+` >= now() - 3600`); err != nil {
		return fmt.Errorf("copy recent rows to %s: %w", t.byUserName(), err)
	}
	return nil
}

// copyRebuilt is step 5: the old rows of each rebuilt table copied (unless a view fills it), the
// old table dropped.
func copyRebuilt(ctx context.Context, conn driver.Conn, r target, prev, next *schema, v uint32, names []string) error {
	filled := map[string]bool{}
	for _, t := range next.tables {
		if t.byUser != "" {
			filled[t.byUserName()] = true
		}
		if t.fill != "" {
			filled[t.name] = true
		}
	}
	for _, name := range names {
		old := name + "_v" + strconv.Itoa(int(v-1))
		exists, err := tableExists(ctx, conn, r.database, old)
		if err != nil {
			return err
		}
		if !exists {
			continue
		}
		if !filled[name] {
			cols := columnNames(prev.table(name).plainColumns())
			if err := conn.Exec(ctx, `INSERT INTO `+r.name(name)+` (`+cols+`) SELECT `+cols+` FROM `+r.name(old)); err != nil {
				return fmt.Errorf("copy %s to version %d: %w", name, v, err)
			}
		}
		if err := conn.Exec(ctx, r.drop(old)); err != nil {
			return fmt.Errorf("drop %s: %w", old, err)
		}
	}
	return nil
}

// viewsTouching returns the views of s that read or fill one of the named tables.
func (r target) viewsTouching(s *schema, names []string) []string {
	var out []string
	for _, t := range s.tables {
		if t.byUser != "" && (slices.Contains(names, t.name) || slices.Contains(names, t.byUserName())) {
			name, _ := r.byUserView(t)
			out = append(out, name)
		}
		if t.fill != "" && (slices.Contains(names, t.name) || slices.Contains(names, t.source)) {
			name, _ := r.fillView(t)
			out = append(out, name)
		}
	}
	return out
}
