package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Retention on the modern shape (schema_render.go): TTL instead of the retention job's own
// mutations and partition drops. The job installs the TTL its configuration asks for and
// ClickHouse applies it at merges (within merge_with_ttl_timeout, an hour):
//
//   - anonymize_after: a column TTL on decisions.user_key; an expired column value is reset to
//     its default, ''. The by_user projection is rebuilt with the part, and decisions_by_user is
//     a view of decisions, so nothing else holds the key.
//   - drop_after: a table TTL on decisions and deliveries; a day partition expires as a whole,
//     and ttl_only_drop_parts drops its parts without rewriting them.
//
// Both count in whole days as the classic job does: a row decided on day D expires at the start
// of day D+1 plus the limit. Changing a limit re-installs the TTL, which ClickHouse applies to
// the existing rows (materialize_ttl_after_modify); a limit turned off removes it. A run whose
// TTL is already installed only reads system.tables.

// ttlExpr is the expiry of a row stamped by timeColumn under a limit, written the way
// ClickHouse prints it back in create_table_query (so an installed TTL is recognised).
func ttlExpr(timeColumn string, after time.Duration) string {
	secs := int64((24*time.Hour + after) / time.Second)
	return "toStartOfDay(" + timeColumn + ") + toIntervalSecond(" + strconv.FormatInt(secs, 10) + ")"
}

// ttlStatements returns the ALTER statements that bring one table's TTL from its
// create_table_query to the limits (zero or negative: off), both made from the model: the
// table's timeColumn, and its anonymize column as the modern shape types it.
func ttlStatements(t *table, createQuery string, anonymizeAfter, dropAfter time.Duration) []string {
	var stmts []string
	if c := t.column(t.anonymize); c != nil {
		col := "`" + c.name + "` " + (target{shape: shapeModern}).typeOf(*c)
		switch want := col + " TTL " + ttlExpr(t.timeColumn, anonymizeAfter); {
		case anonymizeAfter > 0 && !strings.Contains(createQuery, want+","):
			stmts = append(stmts, "MODIFY COLUMN "+want)
		case anonymizeAfter <= 0 && strings.Contains(createQuery, col+" TTL "):
			stmts = append(stmts, "MODIFY COLUMN `"+c.name+"` REMOVE TTL")
		}
	}
	// The table TTL follows the sorting key's closing parenthesis; the settings follow it.
	switch want := ") TTL " + ttlExpr(t.timeColumn, dropAfter) + " SETTINGS"; {
	case dropAfter > 0 && !strings.Contains(createQuery, want):
		stmts = append(stmts, "MODIFY TTL "+ttlExpr(t.timeColumn, dropAfter))
	case dropAfter <= 0 && strings.Contains(createQuery, ") TTL "):
		stmts = append(stmts, "REMOVE TTL")
	}
	return stmts
}

// applyRetentionTTL installs the retention limits as TTL on the modern schema's tables and
// waits for the mutations that apply a changed TTL to the existing rows. It reports the ALTERs
// it ran as "table: statement".
func (db *DB) applyRetentionTTL(ctx context.Context, anonymizeAfter, dropAfter time.Duration) ([]string, error) {
	var changed []string
	for _, t := range newest.tables {
		if t.timeColumn == "" {
			continue
		}
		var createQuery string
		if err := db.QueryRow(ctx, `SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?`, db.Database, t.name).Scan(&createQuery); err != nil {
			return changed, fmt.Errorf("read ttl of %s: %w", t.name, err)
		}
		for _, alter := range ttlStatements(t, createQuery, anonymizeAfter, dropAfter) {
			if err := db.Exec(ctx, `ALTER TABLE `+db.table(t.name)+` `+alter); err != nil {
				return changed, fmt.Errorf("ttl of %s: %w", t.name, err)
			}
			changed = append(changed, t.name+": "+alter)
		}
	}
	if len(changed) > 0 {
		if err := db.waitMutations(ctx); err != nil {
			return changed, err
		}
	}
	return changed, nil
}
