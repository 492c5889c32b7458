package audit

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Retention (run by the audit writer on a schedule; see Writer.runRetention).
//
// Two limits, both counted in whole days of decided_at / at (the server-side times the tables are
// partitioned by), so each run has at most one new day to handle and a day is handled once:
//
//   - anonymise: rows decided before the start of the day AnonymizeAfter ago keep everything but
//     user_key, which becomes ''. In decisions that is an ALTER UPDATE (user_key is not a key
//     column there); decisions_by_user is keyed by user, so its partitions of those days are
//     dropped instead (a lookup by user could not find anonymous rows anyway). Deliveries hold
//     no user key.
//   - drop: partitions of days before DropAfter ago are dropped from decisions, decisions_by_user
//     and deliveries — the hard limit. The daily summaries (no personal data) are kept.
//
// On the modern schema (ClickHouse 23+, schema_render.go) both limits are TTL instead
// (retention_ttl.go).

// RetentionResult says what one retention run changed.
type RetentionResult struct {
	// Anonymized is how many decisions had their user_key blanked.
	Anonymized uint64
	// Dropped lists the dropped partitions as "table/YYYYMMDD".
	Dropped []string
	// TTL lists the TTL changes made on the modern schema, as "table: ALTER clause"; there
	// ClickHouse anonymises and drops at merges, and Anonymized and Dropped stay empty.
	TTL []string
}

// startOfDay is the UTC midnight at or before t.
func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ApplyRetention anonymises decisions older than anonymizeAfter and drops partitions older than
// dropAfter, as of now; a zero duration disables its step. It waits for the mutations it starts.
// Running it again with the same now changes nothing.
func (db *DB) ApplyRetention(ctx context.Context, now time.Time, anonymizeAfter, dropAfter time.Duration) (RetentionResult, error) {
	var res RetentionResult
	if modern, err := db.modern(ctx); err != nil {
		return res, fmt.Errorf("retention: %w", err)
	} else if modern {
		// TTL does the work (retention_ttl.go), on the server's clock: now is not used.
		res.TTL, err = db.applyRetentionTTL(ctx, anonymizeAfter, dropAfter)
		if err != nil {
			return res, fmt.Errorf("retention: %w", err)
		}
		return res, nil
	}
	if dropAfter > 0 {
		before := startOfDay(now.Add(-dropAfter))
		for _, table := range []string{"decisions", "decisions_by_user", "deliveries"} {
			dropped, err := db.dropPartitionsBefore(ctx, table, before)
			if err != nil {
				return res, fmt.Errorf("retention: %w", err)
			}
			res.Dropped = append(res.Dropped, dropped...)
		}
	}
	if anonymizeAfter > 0 {
		before := startOfDay(now.Add(-anonymizeAfter))
		n, err := db.mutateIfAny(ctx, "decisions", `UPDATE user_key = ''`, `decided_at < ? AND user_key != ''`, before)
		if err != nil {
			return res, fmt.Errorf("retention: anonymise: %w", err)
		}
		res.Anonymized = n
		dropped, err := db.dropPartitionsBefore(ctx, "decisions_by_user", before)
		if err != nil {
			return res, fmt.Errorf("retention: anonymise: %w", err)
		}
		res.Dropped = append(res.Dropped, dropped...)
		if err := db.waitMutations(ctx); err != nil {
			return res, fmt.Errorf("retention: %w", err)
		}
	}
	return res, nil
}

// dropPartitionsBefore drops every day partition of a day-partitioned table whose day is before
// the given midnight, and returns them as "table/YYYYMMDD".
func (db *DB) dropPartitionsBefore(ctx context.Context, table string, before time.Time) ([]string, error) {
	days, err := db.dayBlocks(ctx, table)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := range days {
		if day, _ := time.Parse("20060102", id); day.Before(before) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var dropped []string
	for _, id := range ids {
		// Partition ids are digits only (checked by the parse above): safe to splice.
		if err := db.Exec(ctx, `ALTER TABLE `+db.table(table)+` DROP PARTITION ID '`+id+`'`); err != nil {
			return dropped, fmt.Errorf("drop partition %s of %s: %w", id, table, err)
		}
		dropped = append(dropped, table+"/"+id)
	}
	return dropped, nil
}
