package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Every statement tollgate sends to ClickHouse, in the order a fresh install sends them: the
// migration (the newest schema version), the writer's inserts (decisions, deliveries,
// duplicates), the CLI's queries (audit summary, user, blocked, diff), the access report's, every query of docs/audit.md, erasure and
// retention. They are recorded by running the real functions against a recorder (so a new
// statement in those functions is covered without touching this list) and replayed on
// ClickHouse as it is today (chdb, TestStatementsOnTodaysClickHouse) and on the 18.16 server
// (TestStatementsOnServer).
//
// version is the server version the recorder claims: "" records the classic schema's path (as
// on 18.16), a version of 23 or newer the modern shape's (schema_render.go) on a fresh database.
func tollgateStatements(t *testing.T, database, version string) []recorded {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	rec := &recorder{rows: map[string][][]any{
		// UserReport reads deliveries only when the user has decisions.
		"ORDER BY event_time, event_id, destination": {{now, now, "e1", "purchase", "meta", "forwarded", "consented",
			"marketing", "EU", uint8(0), []string{}, []string{}, "v1", ""}},
		// Erasure deletes the deliveries of the user's events.
		"SELECT DISTINCT event_id": {{"e1"}},
		// Retention drops the day partitions older than its horizon, the counts job counts the
		// ended days (counts.go).
		"max(max_block_number)": {{"20000101", int64(3)}},
	}}
	db := &DB{Conn: rec, Database: database, Version: version}

	// Migrations on a fresh database (the recorder lists no table): the model rendered at the
	// newest version; TestSchemaRenderedIsMigrated records the upgrades of older databases.
	// Migrate ends by checking the columns it read, which the recorder does not answer: that
	// check is the only error allowed.
	var schemaErr *schemaError
	if err := db.Migrate(ctx); err != nil && !errors.As(err, &schemaErr) {
		require.NoError(t, err, "migrate")
	}

	dec := func(id, user, dest, outcome, reason, run string, gpc bool, fields ...string) schemas.Decision {
		return schemas.Decision{DecisionID: id + "/" + dest + "/" + run, EventID: id, UserKey: user, Destination: dest,
			EventName: "purchase", EventTimeMs: now.UnixMilli(), DecidedMs: now.UnixMilli(), Outcome: outcome, Reason: reason,
			Purpose: "marketing", Jurisdiction: "EU", GPC: gpc, FieldsSent: fields,
			FieldsStripped: []string{"properties.email"}, PolicyVersion: "v1", RunID: run}
	}
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{
		dec("e1", "u-42", "meta", "forwarded", "consented", "", false, "context.page_url", "properties.fbclid"),
		dec("e1", "u-42", "ga4", "blocked", "no_consent", "", false),
		dec("e2", "u-42", "meta", "blocked", "gpc", "", true),
		dec("e3", "u-7", "ga4", "forwarded", "consented", "", false, "context.page_url"),
		dec("e1", "u-42", "meta", "forwarded", "consented", "RUN_ID", false, "context.page_url"),
		dec("e2", "u-42", "meta", "blocked", "gpc", "RUN_ID", true),
	}))
	at := now.UnixMilli()
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e1", Destination: "meta", Attempt: 1, Status: "retrying", HTTPStatus: 503, Error: "http_503", LatencyMs: 80, AtMs: at, DeliveryID: "d1"},
		{EventID: "e1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 40, AtMs: at + 2000, DeliveryID: "d2"},
		{EventID: "e3", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 20, AtMs: at, DeliveryID: "d3"},
	}))

	require.NoError(t, db.InsertDuplicates(ctx, []schemas.Duplicate{
		{EventID: "e1", UserKey: "u-42", FirstSeenMs: at, LastSeenMs: at + 5000, Resends: 2},
	}))

	// The CLI (cmd/tollgate audit ...) and the writer's reads.
	_, err := db.Summary(ctx)
	require.NoError(t, err)
	_, err = db.DeliverySummary(ctx)
	require.NoError(t, err)
	_, err = db.CountDecisions(ctx, "")
	require.NoError(t, err)
	_, err = db.CountDeliveries(ctx)
	require.NoError(t, err)
	_, err = db.UserReport(ctx, "u-42", 10)
	require.NoError(t, err)
	_, err = db.Blocked(ctx, now.Add(-24*time.Hour))
	require.NoError(t, err)
	_, err = db.Diff(ctx, "RUN_ID", 10)
	require.NoError(t, err)
	_, err = db.UserRecipients(ctx, "u-42")
	require.NoError(t, err)
	_, _, err = db.ErasedSince(ctx, now.Add(-time.Hour))
	require.NoError(t, err)

	// The access report's reads (report.BuildAccess).
	_, err = db.UserAccess(ctx, "u-42")
	require.NoError(t, err)

	// A replay run against live traffic: tollgate repair, audit summary --run, the exposure
	// report (read_repair.go).
	_, err = db.RunPolicyVersions(ctx, "RUN_ID")
	require.NoError(t, err)
	require.NoError(t, db.RepairCandidates(ctx, "RUN_ID", "", func(RepairCandidate) error { return nil }))
	require.NoError(t, db.RepairCandidates(ctx, "RUN_ID", "meta", func(RepairCandidate) error { return nil }))
	_, err = db.RunSummary(ctx, "RUN_ID")
	require.NoError(t, err)
	_, err = db.RunDeliverySummary(ctx, "RUN_ID")
	require.NoError(t, err)
	for _, users := range []bool{false, true} {
		_, err = db.ExposureBlocked(ctx, "RUN_ID", users)
		require.NoError(t, err)
		_, err = db.ExposureFields(ctx, "RUN_ID", users)
		require.NoError(t, err)
		_, err = db.ExposureUserCounts(ctx, "RUN_ID", users)
		require.NoError(t, err)
	}

	// docs/audit.md's queries, as a user would paste them.
	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	for i, b := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		rec.stmts = append(rec.stmts, recorded{Name: "docs/audit.md query " + strconv.Itoa(i+1),
			SQL: strings.ReplaceAll(b[1], "tollgate.", "`"+database+"`.")})
	}

	// The writer's counts job, then the summaries reading its counts.
	_, err = db.CountDays(ctx, now)
	require.NoError(t, err)
	_, err = db.Summary(ctx)
	require.NoError(t, err)

	// Erasure and retention last: they delete what the reads above read.
	require.NoError(t, db.EraseUser(ctx, "u-42"))
	_, err = db.ApplyRetention(ctx, now, 24*time.Hour, 48*time.Hour)
	require.NoError(t, err)
	return rec.stmts
}

// venvMu: the chdb tests run in parallel, and two venv.sh creating the venv at once would clash.
var venvMu sync.Mutex

// chdbPython returns the python of deploy/chdb's venv, creating it if needed.
func chdbPython(t *testing.T) string {
	t.Helper()
	venvMu.Lock()
	defer venvMu.Unlock()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("the ClickHouse 26.x check needs python3 (with venv) to install chdb: %v", err)
	}
	cmd := exec.Command("../deploy/chdb/venv.sh")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the ClickHouse 26.x check could not set up its venv (deploy/chdb/venv.sh): %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

type chdbResult struct {
	Version string `json:"version"`
	Results []struct {
		Name  string  `json:"name"`
		Error *string `json:"error"`
		// Data are the result's rows (JSONCompact: 64-bit integers are strings).
		Data [][]any `json:"data"`
	} `json:"results"`
}

// runChdb runs the statements in one chdb session and returns the engine's verdict on each.
func runChdb(t *testing.T, stmts []recorded) chdbResult {
	t.Helper()
	python := chdbPython(t)
	in, err := json.Marshal(stmts)
	require.NoError(t, err)
	script, err := filepath.Abs("../deploy/chdb/run.py")
	require.NoError(t, err)
	cmd := exec.Command(python, script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "deploy/chdb/run.py: %s", stderr.String())
	var res chdbResult
	require.NoError(t, json.Unmarshal(out, &res), "deploy/chdb/run.py output: %s", out)
	require.Len(t, res.Results, len(stmts))
	return res
}

// Today's ClickHouse (26.x, embedded through PyPI's chdb) accepts every statement tollgate sends.
func TestStatementsOnTodaysClickHouse(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs chdb into a venv and runs ClickHouse 26.x in-process")
	}
	stmts := tollgateStatements(t, "tollgate_chdb", "")
	res := runChdb(t, stmts)
	t.Logf("ran %d statements on ClickHouse %s (chdb)", len(stmts), res.Version)
	for i, r := range res.Results {
		if r.Error != nil {
			t.Errorf("%s fails on ClickHouse %s:\n%s\nerror: %s", r.Name, res.Version, stmts[i].SQL, *r.Error)
		}
	}
}

// The same statements, in the same order, on the server the other tests use (18.16 here).
func TestStatementsOnServer(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	db := openDB(t, cfg)
	// The recorded migrations create the database themselves: start from nothing.
	ctx := context.Background()
	require.NoError(t, db.Exec(ctx, "DROP DATABASE IF EXISTS `"+db.Database+"`"))
	for _, st := range tollgateStatements(t, db.Database, "") {
		var err error
		if strings.HasPrefix(strings.TrimSpace(st.SQL), "SELECT") {
			var rows interface {
				Next() bool
				Err() error
				Close() error
			}
			if rows, err = db.Query(ctx, st.SQL); err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				_ = rows.Close()
			}
		} else {
			err = db.Exec(ctx, st.SQL)
		}
		require.NoError(t, err, "%s fails on ClickHouse %s:\n%s", st.Name, db.Version, st.SQL)
	}
}
