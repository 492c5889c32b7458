package audit

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// Every SQL example of docs/audit.md runs against the real server on data made for it, and
// returns rows: a renamed column, a wrong table or a filter that can never match fails here.
func TestDocumentedQueries(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	require.GreaterOrEqual(t, len(blocks), 10, "docs/audit.md promises ten queries")

	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Now().Add(-time.Hour)
	dec := func(id, user, dest, outcome, reason, run string, gpc bool, fields ...string) schemas.Decision {
		return schemas.Decision{DecisionID: id + "/" + dest + "/" + run, EventID: id, UserKey: user, Destination: dest,
			EventName: "purchase", EventTimeMs: now.UnixMilli(), DecidedMs: now.UnixMilli(), Outcome: outcome, Reason: reason,
			Purpose: map[string]string{"meta": "marketing", "ga4": "analytics"}[dest], Jurisdiction: "EU", GPC: gpc,
			FieldsSent: fields, FieldsStripped: []string{"properties.email"}, PolicyVersion: "v1", RunID: run}
	}
	ds := []schemas.Decision{
		dec("e1", "u-42", "meta", "forwarded", "consented", "", false, "context.page_url", "properties.fbclid"),
		dec("e1", "u-42", "ga4", "blocked", "no_consent", "", false),
		dec("e2", "u-42", "meta", "blocked", "gpc", "", true),
		dec("e3", "u-42", "meta", "forwarded", "consented", "", false, "context.page_url"),
		dec("e4", "u-7", "ga4", "forwarded", "consented", "", false, "context.page_url"),
		dec("e1", "u-42", "meta", "forwarded", "consented", "RUN_ID", false, "context.page_url"), // fbclid dropped
		dec("e2", "u-42", "meta", "blocked", "gpc", "RUN_ID", true),
	}
	require.NoError(t, db.InsertDecisions(ctx, ds))
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		{EventID: "e1", Destination: "meta", Attempt: 1, Status: "retrying", HTTPStatus: 503, Error: "http_503", LatencyMs: 80, AtMs: at(time.Second)},
		{EventID: "e1", Destination: "meta", Attempt: 2, Status: "delivered", HTTPStatus: 200, LatencyMs: 40, AtMs: at(3 * time.Second)},
		{EventID: "e3", Destination: "meta", Attempt: 1, Status: "dead_lettered", HTTPStatus: 400, Error: "http_400", LatencyMs: 30, AtMs: at(time.Second)},
		{EventID: "e4", Destination: "ga4", Attempt: 1, Status: "delivered", HTTPStatus: 204, LatencyMs: 20, AtMs: at(time.Second)},
	}))

	_, err = db.CountDays(ctx, now.Add(48*time.Hour)) // the example day has ended: its counts are read
	require.NoError(t, err)

	for i, b := range blocks {
		q := strings.ReplaceAll(b[1], "tollgate.", "`"+db.Database+"`.")
		rows, err := db.Query(ctx, q)
		require.NoError(t, err, "query %d of docs/audit.md:\n%s", i+1, b[1])
		n := 0
		for rows.Next() {
			n++
		}
		require.NoError(t, rows.Err(), "query %d", i+1)
		rows.Close()
		require.Positive(t, n, "query %d of docs/audit.md returns no rows on its example data:\n%s", i+1, b[1])
	}
}

// docs/audit.md documents every column of the tables the writer fills, with its type, in table
// order: a column added, renamed or retyped without the docs fails here.
func TestDocumentedColumns(t *testing.T) {
	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| ([A-Za-z0-9()]+) \\|")
	documented := func(heading string) []column {
		i := strings.Index(string(doc), "\n"+heading+"\n")
		require.NotEqual(t, -1, i, "docs/audit.md has no heading %q", heading)
		var cols []column
		for _, line := range strings.Split(string(doc[i+len(heading)+2:]), "\n") {
			if strings.HasPrefix(line, "#") {
				break
			}
			if m := row.FindStringSubmatch(line); m != nil {
				cols = append(cols, column{m[1], m[2]})
			}
		}
		return cols
	}
	require.Equal(t, decisionsColumns, documented("### `decisions` (and `decisions_by_user`, the same columns)"))
	require.Equal(t, deliveriesColumns, documented("### `deliveries`"))
	require.Equal(t, erasuresColumns, documented("### `erasures`"))
	require.Equal(t, duplicatesColumns, documented("### `duplicates`"))
}

// The reconciliation query of docs/audit.md counts real requests: an event a vendor got twice
// (two delivered rows, two delivery ids) shows as delivered_more_than_once, and the same audit
// record inserted twice does not.
func TestReconciliationQueryCountsRequests(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/audit.md")
	require.NoError(t, err)
	var query string
	for _, b := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(b[1], "delivered_more_than_once") {
			query = b[1]
		}
	}
	require.NotEmpty(t, query, "docs/audit.md has the reconciliation query")
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	now := time.Now().Add(-time.Hour)
	var ds []schemas.Decision
	for _, id := range []string{"once", "twice", "queued"} {
		d := testDecision(0)
		d.DecisionID, d.EventID, d.Destination, d.Outcome, d.RunID, d.DecidedMs = id, id, "meta", "forwarded", "", now.UnixMilli()
		ds = append(ds, d)
	}
	require.NoError(t, db.InsertDecisions(ctx, ds))
	sent := func(id, deliveryID string) schemas.Delivery {
		return schemas.Delivery{EventID: id, Destination: "meta", Attempt: 1, Status: "delivered", HTTPStatus: 200, AtMs: now.UnixMilli(), DeliveryID: deliveryID}
	}
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{
		sent("once", "a"), sent("once", "a"), // one request, its audit record inserted twice
		sent("twice", "b"), sent("twice", "c"), // two requests
	}))
	var dest string
	var forwarded, requests, once, more, notEnded uint64
	require.NoError(t, db.QueryRow(ctx, strings.ReplaceAll(query, "tollgate.", "`"+db.Database+"`.")).Scan(&dest, &forwarded, &requests, &once, &more, &notEnded))
	require.Equal(t, []any{"meta", uint64(3), uint64(3), uint64(1), uint64(1), uint64(1)}, []any{dest, forwarded, requests, once, more, notEnded})
}
