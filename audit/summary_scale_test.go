package audit

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
)

// TestSummaryAtScale measures `tollgate audit summary` on AUDIT_SUMMARY_DECISIONS decisions of one
// ended day (skipped without it; figures in the log, -v): the daily summary's read of schema
// versions 3 to 8 (uniqExactMerge), and version 9's before and after the day is counted. Memory is
// the server's own figure for the query (system.query_log). docs/audit.md "Counts per day" quotes
// a run:
//
//	AUDIT_SUMMARY_DECISIONS=10000000 go test -v -run TestSummaryAtScale -timeout 30m ./audit/
func TestSummaryAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("AUDIT_SUMMARY_DECISIONS"))
	if n == 0 {
		t.Skip("set AUDIT_SUMMARY_DECISIONS to measure the summary at that many decisions")
	}
	db := openAtVersion(t, 8)
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	day := startOfDay(time.Now()).Add(-24 * time.Hour)
	start := time.Now()
	const chunk = 10_000_000 // an insert well within the connection's read timeout
	for from := 0; from < n; from += chunk {
		require.NoError(t, db.Exec(ctx, `INSERT INTO `+db.table("decisions")+` (decision_id, event_id, user_key, destination, event_name,
			event_time, decided_at, outcome, reason, purpose, jurisdiction, gpc, fields_sent, fields_stripped, policy_version, run_id)
			SELECT toString(number), concat('e', toString(intDiv(number, 3))), concat('u', toString(number % 100000)),
				['ga4', 'meta', 'ops'][number % 3 + 1], 'page_view', toDateTime(?) + number % 86400, toDateTime(?) + number % 86400,
				if(number % 4 = 0, 'blocked', 'forwarded'), if(number % 4 = 0, 'no_consent', 'consented'), 'marketing', 'EU', 0,
				['context.page_url'], ['properties.email'], 'v1', ''
			FROM system.numbers LIMIT ?, ?`, day.Unix(), day.Unix(), from, min(chunk, n-from)))
	}
	t.Logf("%d decisions inserted in %s", n, time.Since(start).Round(time.Second))

	step := 0
	measure := func(label string, run func(context.Context) error) {
		t.Helper()
		step++
		id := db.Database + "_" + strconv.Itoa(step) // every query of the step shares it
		start := time.Now()
		err := run(clickhouse.Context(ctx, clickhouse.WithQueryID(id)))
		took := time.Since(start)
		if err != nil && step == 1 { // the old read is what is measured, failing included
			t.Logf("%-48s %8s, failed: %v", label, took.Round(time.Millisecond), err)
			return
		}
		require.NoError(t, err, label)
		require.NoError(t, db.Exec(ctx, "SYSTEM FLUSH LOGS"))
		var mem uint64
		require.NoError(t, db.QueryRow(ctx, `SELECT max(memory_usage) FROM system.query_log WHERE type = 2 AND query_id = ?`, id).Scan(&mem))
		t.Logf("%-48s %8s, at most %5d MB in one query", label, took.Round(time.Millisecond), mem>>20)
	}
	measure("version 8: uniqExactMerge of the daily summary", func(ctx context.Context) error {
		_, err := readRows(ctx, db, "old summary", func(rows driver.Rows, r *SummaryRow) error {
			return rows.Scan(&r.Destination, &r.Outcome, &r.Reason, &r.Count)
		}, `SELECT destination, outcome, reason, uniqExactMerge(events) FROM `+db.table("decisions_daily")+`
			WHERE run_id = '' GROUP BY destination, outcome, reason`)
		return err
	})
	require.NoError(t, db.Migrate(ctx))
	var rows []SummaryRow
	total := func() (n uint64) {
		for _, r := range rows {
			n += r.Count
		}
		return n
	}
	measure("version 9, day not counted (decisions FINAL)", func(ctx context.Context) (err error) { rows, err = db.Summary(ctx); return err })
	require.Equal(t, uint64(n), total())
	measure("counting the day (CountDays)", func(ctx context.Context) error { _, err := db.CountDays(ctx, time.Now()); return err })
	measure("version 9, day counted", func(ctx context.Context) (err error) { rows, err = db.Summary(ctx); return err })
	require.Equal(t, uint64(n), total())
}
