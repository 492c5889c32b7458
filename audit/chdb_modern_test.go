package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The modern shape (schema_render.go) is chosen by the server's version alone.
func TestModernServer(t *testing.T) {
	t.Parallel()
	for version, want := range map[string]bool{
		"18.16.1": false, "22.12.5.34": false, "23.1.1.3077": true, "24.8.4.13": true,
		"26.9.1.1": true, "": false, "26": false, "x.y": false, "v24.3": false,
	} {
		require.Equal(t, want, modernServer(version), "version %q", version)
	}
}

const modernVersion = "26.9.1.1"

// chdbQuery is a statement appended to a recorded run whose result a test reads.
func chdbQuery(name, sql string) recorded { return recorded{Name: name, SQL: sql} }

// runChdbOK runs the statements on chdb, fails on any error, and returns each result by name.
func runChdbOK(t *testing.T, stmts []recorded) (string, map[string][][]any) {
	t.Helper()
	res := runChdb(t, stmts)
	out := map[string][][]any{}
	for i, r := range res.Results {
		if r.Error != nil {
			t.Fatalf("%s fails on ClickHouse %s:\n%.2000s\nerror: %.2000s", r.Name, res.Version, stmts[i].SQL, *r.Error)
		}
		out[r.Name] = r.Data
	}
	return res.Version, out
}

// On a server of 23 or newer a fresh database gets the modern schema, and every statement of
// that path (DDL, inserts, the CLI's and the access report's queries, docs/audit.md's queries,
// erasure, retention as TTL) runs on ClickHouse 26.x; then the shape does what it promises:
// decisions_by_user is a view that counts a row written twice once, erasure reached it, a
// lookup by user reads the by_user projection, and the TTL the retention job installed is
// recognised on its next run and anonymises and drops at merges.
func TestModernStatementsOnTodaysClickHouse(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs chdb into a venv and runs ClickHouse 26.x in-process")
	}
	const database = "tollgate_modern"
	stmts := tollgateStatements(t, database, modernVersion)
	all := ""
	for _, st := range stmts {
		all += st.SQL + "\n"
	}
	require.Contains(t, all, "PROJECTION by_user")
	require.Contains(t, all, "CREATE VIEW IF NOT EXISTS `"+database+"`.`decisions_by_user`")
	require.Contains(t, all, "LowCardinality(String)")
	require.NotContains(t, all, "decisions_by_user_mv", "no second copy on the modern path")
	require.NotContains(t, all, "ALTER TABLE `"+database+"`.`decisions_by_user`", "a view is not altered")
	require.NotContains(t, all, "DROP PARTITION", "retention is TTL on the modern path")
	require.Contains(t, all, "MODIFY COLUMN `user_key` String TTL ")

	d := func(table string) string { return qualified(database, table) }
	cols := "(event_id, user_key, destination, event_time, decided_at, outcome, reason)"
	stmts = append(stmts,
		chdbQuery("engine", `SELECT engine FROM system.tables WHERE database = '`+database+`' AND name = 'decisions_by_user'`),
		chdbQuery("decisions ddl", `SELECT create_table_query FROM system.tables WHERE database = '`+database+`' AND name = 'decisions'`),
		chdbQuery("deliveries ddl", `SELECT create_table_query FROM system.tables WHERE database = '`+database+`' AND name = 'deliveries'`),
		chdbQuery("erased", `SELECT count() FROM `+d("decisions_by_user")+` FINAL WHERE user_key = 'u-42'`),
		// u-7's decision written a second time (a replay of the topic): still one.
		chdbQuery("copy", `INSERT INTO `+d("decisions")+` SELECT * FROM `+d("decisions")+` WHERE user_key = 'u-7'`),
		chdbQuery("copies", `SELECT count() FROM `+d("decisions")+` WHERE user_key = 'u-7'`),
		chdbQuery("u-7", `SELECT count(), any(destination), any(outcome) FROM `+d("decisions_by_user")+` FINAL WHERE user_key = 'u-7'`),
		// Enough other users that reading the projection beats reading the table.
		chdbQuery("others", `INSERT INTO `+d("decisions")+` `+cols+` SELECT 'x' || toString(number), 'user' || toString(number % 100000),
			'meta', now(), now(), 'forwarded', 'consented' FROM numbers(1000000)`),
		// The lookup may read at most 100,000 rows: it fails if it reads the 1,000,000-row part
		// of the other users (as it does through FINAL, which never uses a projection).
		chdbQuery("lookup", `SELECT count() FROM `+d("decisions_by_user")+` FINAL WHERE user_key = 'u-7'
			SETTINGS max_rows_to_read = 100000, read_overflow_mode = 'throw'`),
		// Rows decided 3 and 10 days ago: past anonymize_after (24h) and drop_after (48h) resp.
		// anonymise only (3 days: also past drop_after, so use the TTL's day arithmetic: 24h+24h
		// anonymises from the start of day+2, drop from the start of day+3).
		chdbQuery("old rows", `INSERT INTO `+d("decisions")+` `+cols+` SELECT 'old' || toString(number), 'u-old',
			'meta', now(), toStartOfDay(now()) - 86400 * 2 + 60, 'forwarded', 'consented' FROM numbers(1)
			UNION ALL SELECT 'older', 'u-older', 'meta', now(), now() - 86400 * 10, 'forwarded', 'consented'`),
		chdbQuery("merge", `OPTIMIZE TABLE `+d("decisions")+` FINAL`),
		chdbQuery("after ttl", `SELECT event_id, user_key FROM `+d("decisions")+` WHERE event_id IN ('old0', 'older') ORDER BY event_id`),
	)
	version, data := runChdbOK(t, stmts)
	out := map[string][][]string{}
	for name, rows := range data {
		for _, r := range rows {
			cells := make([]string, len(r))
			for i, c := range r {
				cells[i] = fmt.Sprint(c)
			}
			out[name] = append(out[name], cells)
		}
	}
	t.Logf("ran %d statements of the modern schema on ClickHouse %s (chdb)", len(stmts), version)

	require.Equal(t, [][]string{{"View"}}, out["engine"])
	// The next retention run finds the TTL it installed and changes nothing.
	require.Empty(t, ttlStatements(newest.table("decisions"), out["decisions ddl"][0][0], 24*time.Hour, 48*time.Hour),
		"installed TTL not recognised in:\n%s", out["decisions ddl"][0][0])
	require.Empty(t, ttlStatements(newest.table("deliveries"), out["deliveries ddl"][0][0], 24*time.Hour, 48*time.Hour),
		"installed TTL not recognised in:\n%s", out["deliveries ddl"][0][0])
	require.Equal(t, [][]string{{"0"}}, out["erased"], "erasure reached the view")
	require.Equal(t, [][]string{{"2"}}, out["copies"])
	require.Equal(t, [][]string{{"1", "ga4", "forwarded"}}, out["u-7"], "the view counts copies once")
	require.Equal(t, [][]string{{"1"}}, out["lookup"], "a lookup by user reads the projection's granules of that user")
	// old0: decided yesterday-but-one, past anonymize_after (the start of its next day + 24h)
	// but not drop_after; older: past both, gone.
	require.Equal(t, [][]string{{"old0", ""}}, out["after ttl"])
}

// Rows and bytes each decision costs on the modern schema, and on the classic one on the same
// engine, on ClickHouse 26.x (chdb), to set next to TestRowsAndBytesPerDecision's figures for the
// classic schema on the test server (figures in the test log, -v; docs/audit.md "On ClickHouse
// 23 and newer").
func TestRowsAndBytesPerDecisionModern(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs chdb into a venv and runs ClickHouse 26.x in-process")
	}
	shapes := []struct{ label, database, version string }{
		{"classic schema", "tollgate_written_classic", ""},
		{"modern schema", "tollgate_written_modern", modernVersion},
	}
	var stmts []recorded
	for _, sh := range shapes {
		rec := &recorder{}
		db := &DB{Conn: rec, Database: sh.database, Version: sh.version}
		ctx := context.Background()
		var schemaErr *schemaError
		if err := db.Migrate(ctx); err != nil && !errors.As(err, &schemaErr) {
			require.NoError(t, err, "migrate")
		}
		require.NoError(t, db.InsertDecisions(ctx, writtenSample()))
		for _, st := range rec.stmts {
			// The recorder writes a batch as INSERT ... SELECT ... UNION ALL SELECT ...; 10,000
			// of them are beyond a server's AST limits, so the rows go as VALUES (one insert, as
			// the writer's).
			if head, body, ok := strings.Cut(st.SQL, "\nSELECT "); ok && strings.HasPrefix(st.SQL, "INSERT INTO") {
				st.SQL = head + " VALUES (" + strings.ReplaceAll(body, "\nUNION ALL SELECT ", "), (") + ")"
			}
			stmts = append(stmts, recorded{Name: sh.label + " " + st.Name, SQL: st.SQL})
		}
		stmts = append(stmts,
			chdbQuery(sh.label+" parts", `SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts
				WHERE database = '`+sh.database+`' AND active GROUP BY table ORDER BY table`),
			chdbQuery(sh.label+" projection", `SELECT count(), sum(rows), sum(bytes_on_disk) FROM system.projection_parts
				WHERE database = '`+sh.database+`' AND table = 'decisions' AND name = 'by_user' AND active`))
	}
	version, out := runChdbOK(t, stmts)

	per := func(v any) (uint64, float64) {
		var n uint64
		_, err := fmt.Sscan(fmt.Sprint(v), &n)
		require.NoError(t, err)
		return n, float64(n) / writtenDecisions
	}
	for _, sh := range shapes {
		label := "ClickHouse " + version + " (chdb), " + sh.label
		var rows, bytes float64
		tables := map[string]bool{}
		for _, r := range out[sh.label+" parts"] {
			table := r[0].(string)
			tables[table] = true
			if !strings.HasPrefix(table, "decisions") {
				continue
			}
			n, nPer := per(r[1])
			b, bPer := per(r[2])
			t.Logf("%s: %-18s %6d rows (%.3f per decision), %8d bytes on disk (%.1f per decision)", label, table, n, nPer, b, bPer)
			rows, bytes = rows+nPer, bytes+bPer
			if table == "decisions" {
				require.Equal(t, uint64(writtenDecisions), n)
			}
		}
		t.Logf("%s: all tables: %.3f rows and %.1f bytes per decision", label, rows, bytes)
		proj := out[sh.label+" projection"][0]
		if sh.version == "" {
			require.True(t, tables["decisions_by_user"], "the classic schema copies every decision")
			require.Equal(t, "0", fmt.Sprint(proj[0]), "no projection on the classic schema")
			continue
		}
		require.False(t, tables["decisions_by_user"], "decisions_by_user is a view: it stores nothing")
		pn, pnPer := per(proj[1])
		pb, pbPer := per(proj[2])
		require.Equal(t, uint64(writtenDecisions), pn, "the by_user projection holds every decision")
		t.Logf("%s: of which projection by_user %6d rows (%.3f per decision), %8d bytes (%.1f per decision), stored inside the decisions parts",
			label, pn, pnPer, pb, pbPer)
	}
}

// The retention job's TTL changes, from the create_table_query ClickHouse 26.9 prints.
func TestTTLStatements(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	installed := "CREATE TABLE d.decisions (`event_id` String, `user_key` String TTL toStartOfDay(decided_at) + toIntervalSecond(172800), " +
		"`decided_at` DateTime, PROJECTION by_user (SELECT * ORDER BY user_key)) ENGINE = ReplacingMergeTree PARTITION BY toDate(decided_at) " +
		"ORDER BY (destination, event_id, run_id) TTL toStartOfDay(decided_at) + toIntervalSecond(777600) SETTINGS index_granularity = 8192"
	bare := "CREATE TABLE d.decisions (`event_id` String, `user_key` String, `decided_at` DateTime) ENGINE = ReplacingMergeTree " +
		"PARTITION BY toDate(decided_at) ORDER BY (destination, event_id, run_id) SETTINGS index_granularity = 8192"
	require.Empty(t, ttlStatements(newest.table("decisions"), installed, day, 8*day), "installed: nothing to do")
	require.Equal(t, []string{"MODIFY COLUMN `user_key` String TTL toStartOfDay(decided_at) + toIntervalSecond(259200)",
		"MODIFY TTL toStartOfDay(decided_at) + toIntervalSecond(950400)"},
		ttlStatements(newest.table("decisions"), installed, 2*day, 10*day), "changed limits")
	require.Equal(t, []string{"MODIFY COLUMN `user_key` REMOVE TTL", "REMOVE TTL"},
		ttlStatements(newest.table("decisions"), installed, 0, -1), "limits turned off")
	require.Empty(t, ttlStatements(newest.table("decisions"), bare, 0, 0), "off and none installed")
	require.Equal(t, []string{"MODIFY TTL toStartOfDay(at) + toIntervalSecond(172800)"},
		ttlStatements(newest.table("deliveries"), bare, day, day), "deliveries hold no user key")
}
