package audit

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// Daily counts (schema version 9): what `tollgate audit summary` prints, exact, at a cost that
// does not grow with the traffic. Once a day has ended, its decisions and delivery attempts are
// counted from the tables with FINAL (copies count once) into decisions_counts and
// deliveries_counts, one row per day and group. A summary adds up the counted days and counts
// the days after the last counted one from the tables, so it is exact at once, also before a
// day is counted or when no writer counts.
//
// The daily summaries they replace (decisions_daily, deliveries_daily: uniqExact states) held
// every event id of a day, 16 bytes a decision, as much as decisions itself, and a summary read
// all the ids of its range into memory at once, slower than decisions FINAL: 22 s and 2.9 GB for
// 60M decisions (TestSummaryAtScale), growing with every event ever decided.
//
// A counted day is counted again when rows reach it later (a writer back from an outage longer
// than the day, a late partition): its partition then has a part with a higher block number than
// when it was counted (counted_at's blocks column). Merges and mutations keep block numbers, so
// neither an erasure nor a merge counts a day again. A count never goes down (the tables are
// ReplacingMergeTree(events or attempts): the largest stays): an erasure after a day was
// counted does not change its counts, as it did not change the daily summaries.

// countGrace is how long after midnight (UTC) a day is left to the inserts still on their way
// before it is counted.
const countGrace = 10 * time.Minute

// countEvery is how often a writer looks for days to count, the first time countFirst after it
// started: not while a starting writer catches up on its backlog (and not in a short-lived one).
const (
	countEvery = 10 * time.Minute
	countFirst = time.Minute
)

// counted describes one counts table and what it counts.
type counted struct {
	counts, source string // decisions_counts, decisions
	timeColumn     string // the source's day is toDate(timeColumn)
	groups         string // the group columns, as in both tables
	value          string // the count column
	// legacy is the daily summary of the days before version 9 and legacyGroups and
	// legacyValue what it holds: read for a day only when retention has dropped the day from
	// the source table.
	legacy, legacyGroups, legacyValue string
}

var (
	decisionCounts = counted{counts: "decisions_counts", source: "decisions", timeColumn: "decided_at",
		groups: "destination, outcome, reason, run_id", value: "events",
		legacy: "decisions_daily", legacyGroups: "destination, outcome, reason, run_id", legacyValue: "uniqExactMerge(events)"}
	// deliveries_daily kept no run id: its days count as live traffic.
	deliveryCounts = counted{counts: "deliveries_counts", source: "deliveries", timeColumn: "at",
		groups: "destination, status, run_id", value: "attempts",
		legacy: "deliveries_daily", legacyGroups: "destination, status, ''", legacyValue: "uniqExactMerge(attempts)"}
)

// CountDays counts every day that ended (by countGrace) before now and is not counted yet, or
// that rows reached since it was counted, oldest first; it returns the days counted. Every
// writer runs it (runCounts); runs at once do no harm (the same counts, written twice).
func (db *DB) CountDays(ctx context.Context, now time.Time) ([]string, error) {
	var done []string
	for _, c := range []counted{decisionCounts, deliveryCounts} {
		days, err := db.countDays(ctx, c, startOfDay(now.Add(-countGrace)))
		done = append(done, days...)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// countDays counts c's days before end that need it, as "table/YYYYMMDD".
func (db *DB) countDays(ctx context.Context, c counted, end time.Time) ([]string, error) {
	blocks, err := db.dayBlocks(ctx, c.source)
	if err != nil {
		return nil, err
	}
	have, err := db.countedBlocks(ctx, c.counts)
	if err != nil {
		return nil, err
	}
	legacy, err := db.legacyDays(ctx, c.legacy)
	if err != nil {
		return nil, err
	}
	var days []string
	for day, b := range blocks {
		if seen, ok := have[day]; !ok || b > seen {
			days = append(days, day)
		}
	}
	for _, day := range legacy {
		if _, ok := have[day]; !ok && blocks[day] == 0 {
			days = append(days, day)
		}
	}
	sort.Strings(days)
	var done []string
	for _, day := range days {
		t, err := time.Parse("20060102", day)
		if err != nil || !t.Before(end) {
			continue
		}
		if b, ok := blocks[day]; ok {
			err = db.countDay(ctx, c, t, b)
		} else {
			err = db.countLegacyDay(ctx, c, t)
		}
		if err != nil {
			return done, fmt.Errorf("count %s of %s: %w", c.source, day, err)
		}
		done = append(done, c.counts+"/"+day)
	}
	return done, nil
}

// dayBlocks returns each day partition of a day-partitioned table (YYYYMMDD) with the highest
// block number of its active parts: an insert makes a part with a higher one, a merge or a
// mutation keeps the numbers of the parts it replaces. Retention drops partitions it lists.
func (db *DB) dayBlocks(ctx context.Context, table string) (map[string]uint64, error) {
	type part struct {
		id     string
		blocks int64
	}
	parts, err := readRows(ctx, db, "list day partitions of "+table, func(rows driver.Rows, p *part) error { return rows.Scan(&p.id, &p.blocks) },
		`SELECT partition_id, max(max_block_number) FROM system.parts WHERE database = ? AND table = ? AND active GROUP BY partition_id`,
		db.Database, table)
	out := map[string]uint64{}
	for _, p := range parts {
		// Only day partitions (version 3 on): another (a table not migrated yet) is never guessed.
		if _, err := time.Parse("20060102", p.id); err == nil {
			out[p.id] = uint64(max(p.blocks, 1))
		}
	}
	return out, err
}

// countedBlocks returns each counted day (YYYYMMDD) with the block number it was counted at.
func (db *DB) countedBlocks(ctx context.Context, table string) (map[string]uint64, error) {
	type day struct {
		day    time.Time
		blocks uint64
	}
	days, err := readRows(ctx, db, "read counted days of "+table, func(rows driver.Rows, d *day) error { return rows.Scan(&d.day, &d.blocks) },
		`SELECT day, max(blocks) FROM `+db.table(table)+` GROUP BY day`)
	out := map[string]uint64{}
	for _, d := range days {
		out[d.day.UTC().Format("20060102")] = d.blocks
	}
	return out, err
}

// legacyDays lists the days of a daily summary table (YYYYMMDD).
func (db *DB) legacyDays(ctx context.Context, table string) ([]string, error) {
	days, err := readRows(ctx, db, "read days of "+table, func(rows driver.Rows, d *time.Time) error { return rows.Scan(d) },
		`SELECT DISTINCT day FROM `+db.table(table))
	out := make([]string, len(days))
	for i, d := range days {
		out[i] = d.UTC().Format("20060102")
	}
	return out, err
}

// countDay writes the counts of one day from the source table, as of block number blocks, and
// the day's marker: a row of empty groups counting 0, so that a day left with no rows (all
// erased) is known as counted too. Summaries skip it (countsSummary).
func (db *DB) countDay(ctx context.Context, c counted, day time.Time, blocks uint64) error {
	err := db.Exec(ctx, `INSERT INTO `+db.table(c.counts)+` (day, `+c.groups+`, `+c.value+`, blocks, counted_at)
		SELECT toDate(toDateTime(?)), `+c.groups+`, count(), toUInt64(?), now()
		FROM `+db.final(c.source)+`
		WHERE `+c.timeColumn+` >= toDateTime(?) AND `+c.timeColumn+` < toDateTime(?)
		GROUP BY `+c.groups, day.Unix(), blocks, day.Unix(), day.Add(24*time.Hour).Unix())
	if err != nil {
		return err
	}
	return db.Exec(ctx, `INSERT INTO `+db.table(c.counts)+` (day, blocks, counted_at)
		SELECT toDate(toDateTime(?)), toUInt64(?), now()`, day.Unix(), blocks)
}

// countLegacyDay writes the counts of a day the source table no longer has, from its daily
// summary.
func (db *DB) countLegacyDay(ctx context.Context, c counted, day time.Time) error {
	return db.Exec(ctx, `INSERT INTO `+db.table(c.counts)+` (day, `+c.groups+`, `+c.value+`, blocks, counted_at)
		SELECT day, `+c.legacyGroups+`, `+c.legacyValue+`, toUInt64(0), now()
		FROM `+db.table(c.legacy)+`
		WHERE day = toDate(toDateTime(?))
		GROUP BY day, `+c.legacyGroups, day.Unix())
}

// readSummary reads a summary of c per group (groups, a prefix of c.groups) where filter holds
// (a condition on both tables with filterArgs, or "1"): the counted days plus the days after the
// last counted one from the source table.
func readSummary[T any](ctx context.Context, db *DB, what string, c counted, groups, filter string, scan func(driver.Rows, *T) error, filterArgs ...any) ([]T, error) {
	from, err := db.countsFrom(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	args := append(append([]any{from.Unix()}, filterArgs...), from.Unix())
	return readRows(ctx, db, what, scan, db.countsSummary(c, groups, filter), append(args, filterArgs...)...)
}

// countsFrom is the start of the days a summary of c counts from the source table: the day after
// the last counted day (the epoch when none is).
func (db *DB) countsFrom(ctx context.Context, c counted) (time.Time, error) {
	var last time.Time
	var n uint64
	if err := db.QueryRow(ctx, `SELECT max(day), count() FROM `+db.table(c.counts)).Scan(&last, &n); err != nil {
		return time.Time{}, fmt.Errorf("read counted days of %s: %w", c.counts, err)
	}
	if n == 0 {
		return time.Unix(0, 0).UTC(), nil
	}
	return startOfDay(last).Add(24 * time.Hour), nil
}

// countsSummary is the SELECT of a summary of c: per group (groups, a prefix of c.groups), the
// counted days before from plus the source's rows from from on, where filter (a condition on
// both tables, or "1") holds. A counted day's copies not merged yet are read as the largest; the
// days' markers (countDay) count 0 and are left out.
func (db *DB) countsSummary(c counted, groups, filter string) string {
	return `SELECT ` + groups + `, sum(n) FROM (
		SELECT ` + groups + `, max(` + c.value + `) AS n FROM ` + db.table(c.counts) + `
		WHERE day < toDate(toDateTime(?)) AND ` + filter + `
		GROUP BY day, ` + c.groups + `
		UNION ALL
		SELECT ` + groups + `, count() AS n FROM ` + db.final(c.source) + `
		WHERE ` + c.timeColumn + ` >= toDateTime(?) AND ` + filter + `
		GROUP BY ` + groups + `)
	GROUP BY ` + groups + `
	HAVING sum(n) > 0
	ORDER BY ` + groups
}

// runCounts counts the ended days countFirst after start and then every countEvery until ctx
// ends. A failed run is logged and tried again at the next.
func (w *Writer) runCounts(ctx context.Context) {
	repeat(ctx, countFirst, countEvery, func(start time.Time) {
		days, err := w.db.CountDays(ctx, start)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			w.log.Warn("counting the audit's ended days failed; trying again at the next run", zap.Error(err), zap.Duration("interval", countEvery))
		case len(days) > 0:
			w.log.Info("audit days counted", zap.Strings("days", days), zap.Duration("took", time.Since(start)))
		}
	})
}
