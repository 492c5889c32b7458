package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// These tests run against the real ClickHouse (TOLLGATE_TEST_CLICKHOUSE, as every audit test),
// each in its own database, migrated by the audit package exactly as the commands do.

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.Stop()
	os.Exit(code)
}

func openTestDB(t testing.TB) *audit.DB {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, err := testenv.RequireClickHouse()
	require.NoError(t, err)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	cfg := &config.Config{ClickHouse: config.ClickHouse{Addr: addr, Username: "default",
		Database: "tollgate_report_test_" + hex.EncodeToString(b)}}
	ctx := context.Background()
	db, err := audit.Open(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx))
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db.Database+"`")
		db.Close()
	})
	return db
}

func testPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	pol, err := policy.Load("../deploy/demo/policy.yaml")
	require.NoError(t, err)
	return pol
}

type decision struct {
	event, user, dest, outcome, reason, purpose, version string
	at                                                   time.Time
	fields                                               []string
}

// insertDecision writes one live decision (INSERT ... SELECT: 18.16 hangs on inline VALUES).
func insertDecision(t testing.TB, db *audit.DB, d decision) {
	t.Helper()
	insertHeld(t, db, d, 0)
}

// insertHeld writes one live decision whose event waited heldMs for the user's choice.
func insertHeld(t testing.TB, db *audit.DB, d decision, heldMs uint32) {
	t.Helper()
	if d.fields == nil {
		d.fields = []string{}
	}
	require.NoError(t, db.Exec(context.Background(), "INSERT INTO `"+db.Database+"`.decisions "+
		"(decision_id, event_id, user_key, destination, event_name, event_time, decided_at, outcome, reason, purpose, "+
		"jurisdiction, gpc, fields_sent, fields_stripped, policy_version, run_id, held_ms) "+
		"SELECT ?, ?, ?, ?, 'purchase', toDateTime(?), toDateTime(?), ?, ?, ?, 'EU', 0, ?, [], ?, '', toUInt32(?)",
		d.event+"/"+d.dest, d.event, d.user, d.dest, d.at.Unix(), d.at.Unix(), d.outcome, d.reason, d.purpose, d.fields, d.version, heldMs))
}

func insertDelivery(t testing.TB, db *audit.DB, event, dest, status string, attempt int, at time.Time) {
	t.Helper()
	require.NoError(t, db.Exec(context.Background(), "INSERT INTO `"+db.Database+"`.deliveries "+
		"(event_id, destination, attempt, status, http_status, error, latency_ms, at, delivery_id) "+
		"SELECT ?, ?, toUInt16(?), ?, toUInt16(200), '', toUInt32(5), toDateTime(?), ?",
		event, dest, attempt, status, at.Unix(), fmt.Sprintf("%s/%s/%d", event, dest, attempt)))
}

func TestAccessReportFieldByField(t *testing.T) {
	db := openTestDB(t)
	pol := testPolicy(t)
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	rows := []decision{
		{"e1", "u-ann", "ga4", "forwarded", "consented", "analytics", "2026-10-01", t0, []string{"context.page_url", "properties.order_value"}},
		{"e2", "u-ann", "ga4", "forwarded", "consented", "analytics", "2026-11-01", t0.Add(time.Hour), []string{"context.page_url"}},
		{"e1", "u-ann", "meta", "forwarded", "consented", "marketing", "2026-10-01", t0, []string{"properties.email"}},
		{"e2", "u-ann", "meta", "blocked", "withdrawn", "marketing", "2026-11-01", t0.Add(time.Hour), nil},
		{"e3", "u-ann", "meta", "blocked", "sensitive", "marketing", "2026-11-01", t0.Add(2 * time.Hour), nil},
		{"e1", "u-ann", "ops", "forwarded", "necessary", "necessary", "2026-10-01", t0, []string{"context.page_url"}},
		{"e9", "u-other", "ga4", "forwarded", "consented", "analytics", "2026-11-01", t0, []string{"properties.currency"}},
	}
	for _, r := range rows {
		insertDecision(t, db, r)
	}
	// A re-inserted batch (the audit writer after a crash) must not count twice: FINAL.
	insertDecision(t, db, rows[0])
	insertDelivery(t, db, "e1", "ga4", "retrying", 1, t0)
	insertDelivery(t, db, "e1", "ga4", "delivered", 2, t0.Add(time.Minute))
	insertDelivery(t, db, "e2", "ga4", "dead_lettered", 1, t0.Add(time.Hour))
	insertDelivery(t, db, "e1", "meta", "delivered", 1, t0)

	a, err := BuildAccess(context.Background(), db, pol, "u-ann", t0.Add(24*time.Hour))
	require.NoError(t, err)
	require.False(t, a.Erased)
	require.Equal(t, []string{"2026-10-01", "2026-11-01"}, a.PolicyVersions)
	require.Len(t, a.Destinations, 3)
	ga4, meta, ops := a.Destinations[0], a.Destinations[1], a.Destinations[2]

	require.Equal(t, "ga4", ga4.Name)
	require.Equal(t, []string{"analytics"}, ga4.Purposes)
	require.Equal(t, BasisConsent, ga4.LegalBasis)
	require.Equal(t, []string{"context.page_url", "properties.order_value"}, ga4.FieldsSent)
	require.Equal(t, uint64(2), ga4.EventsSent)
	require.Equal(t, uint64(0), ga4.EventsBlocked)
	require.Equal(t, t0, *ga4.First)
	require.Equal(t, t0.Add(time.Hour), *ga4.Last)
	require.Equal(t, map[string]uint64{"delivered": 1, "dead_lettered": 1}, ga4.Deliveries)

	require.Equal(t, "meta", meta.Name)
	require.True(t, meta.Sale)
	require.Equal(t, []string{"properties.email"}, meta.FieldsSent)
	require.Equal(t, []string{"properties.email"}, meta.FieldsHashed)
	require.Equal(t, uint64(1), meta.EventsSent)
	require.Equal(t, map[string]uint64{"withdrawn": 1, "sensitive": 1}, meta.BlockedBy)
	require.Equal(t, map[string]uint64{"delivered": 1}, meta.Deliveries)

	require.Equal(t, BasisNecessary, ops.LegalBasis)
	require.Equal(t, []string{"2026-10-01"}, ops.PolicyVersions)

	var html bytes.Buffer
	require.NoError(t, a.WriteHTML(&html))
	requireSelfContained(t, html.String())
	require.Contains(t, html.String(), "you withdrew consent: 1")
	// Kinds of information in words, the path beside them in small type.
	require.Equal(t, map[string]string{"context.page_url": "page address", "properties.order_value": "order value",
		"properties.email": "e-mail address"}, a.Labels)
	require.Contains(t, html.String(), `page address <small class="path"><code>context.page_url</code></small>`)
	require.Contains(t, html.String(), `e-mail address <small class="path"><code>properties.email</code></small>`)
	require.NotContains(t, html.String(), "waited for your choice", "no event was held")
}

// Events held for the user's choice (CONTRACT §9): counted per destination with the longest
// wait and what became of them, in the JSON and in words in the HTML.
func TestAccessReportHeldEvents(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	ga4 := func(event, outcome, reason string) decision {
		return decision{event, "a-visitor", "ga4", outcome, reason, "analytics", "2026-11-01", t0, []string{"context.page_url"}}
	}
	insertHeld(t, db, ga4("e1", "forwarded", "consented"), 2400)
	insertHeld(t, db, ga4("e2", "forwarded", "consented"), 1200)
	insertHeld(t, db, ga4("e3", "blocked", "no_consent"), 30_000) // the window passed
	insertDecision(t, db, ga4("e4", "forwarded", "consented"))    // carried its choice: not held

	a, err := BuildAccess(context.Background(), db, testPolicy(t), "a-visitor", t0.Add(time.Hour))
	require.NoError(t, err)
	d := a.Destinations[0]
	require.Equal(t, "ga4", d.Name)
	require.Equal(t, uint64(3), d.EventsSent)
	require.Equal(t, uint64(3), d.EventsHeld)
	require.Equal(t, uint64(2), d.EventsHeldSent)
	require.Equal(t, uint32(30_000), d.HeldMaxMs)
	require.Zero(t, a.Destinations[1].EventsHeld, "meta had no decision")
	var html bytes.Buffer
	require.NoError(t, a.WriteHTML(&html))
	require.Contains(t, html.String(), "<th>Events that waited for your choice</th><td>3, for up to 30.0 s; 2 sent once you chose, 1 withheld</td>")
	require.Equal(t, 1, strings.Count(html.String(), "waited for your choice"), "only ga4 held events")
}

func TestAccessReportErasedUser(t *testing.T) {
	db := openTestDB(t)
	pol := testPolicy(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	insertDecision(t, db, decision{"e1", "u-gone", "ga4", "forwarded", "consented", "analytics", "2026-11-01", t0, []string{"context.page_url"}})
	require.NoError(t, db.EraseUser(ctx, "u-gone"))
	insertDecision(t, db, decision{"e2", "u-gone", "ga4", "blocked", "erased", "analytics", "2026-11-01", t0.Add(time.Hour), nil})

	a, err := BuildAccess(ctx, db, pol, "u-gone", time.Now())
	require.NoError(t, err)
	require.True(t, a.Erased)
	require.NotNil(t, a.ErasedAt)
	ga4 := a.Destinations[0]
	require.Equal(t, uint64(0), ga4.EventsSent, "the erased user's earlier decisions are deleted")
	require.Equal(t, map[string]uint64{"erased": 1}, ga4.BlockedBy)
	require.Empty(t, ga4.FieldsSent)
}

// TestAccessReport100kDecisions measures the report for one user with 100,000 decisions among
// other users' rows. The figure goes to the log (and docs/privacy-teams.md); no assertion on time.
func TestAccessReport100kDecisions(t *testing.T) {
	db := openTestDB(t)
	pol := testPolicy(t)
	ctx := context.Background()
	const n = 100000
	insert := func(user string) {
		require.NoError(t, db.Exec(ctx, "INSERT INTO `"+db.Database+"`.decisions "+
			"(decision_id, event_id, user_key, destination, event_name, event_time, decided_at, outcome, reason, purpose, "+
			"jurisdiction, gpc, fields_sent, fields_stripped, policy_version, run_id) "+
			"SELECT concat(?, toString(number)), concat(?, toString(intDiv(number, 3))), ?, "+
			"arrayElement(['ga4', 'meta', 'ops'], (number % 3) + 1), 'purchase', "+
			"toDateTime(1793000000 + number * 60), toDateTime(1793000000 + number * 60), "+
			"if(number % 5 = 0, 'blocked', 'forwarded'), if(number % 5 = 0, 'no_consent', 'consented'), "+
			"arrayElement(['analytics', 'marketing', 'necessary'], (number % 3) + 1), 'EU', 0, "+
			"if(number % 5 = 0, emptyArrayString(), ['context.page_url', 'properties.order_value']), emptyArrayString(), '2026-11-01', '' "+
			"FROM system.numbers LIMIT ?", user, user, user, n))
	}
	insert("u-big")
	insert("u-neighbour")
	require.NoError(t, db.Exec(ctx, "INSERT INTO `"+db.Database+"`.deliveries "+
		"(event_id, destination, attempt, status, http_status, error, latency_ms, at, delivery_id) "+
		"SELECT concat('u-big', toString(number)), 'ga4', toUInt16(1), 'delivered', toUInt16(200), '', toUInt32(5), "+
		"toDateTime(1793000000 + number * 60), toString(number) FROM system.numbers LIMIT ?", n/3))

	start := time.Now()
	a, err := BuildAccess(ctx, db, pol, "u-big", time.Now())
	took := time.Since(start)
	require.NoError(t, err)
	var sent, blocked uint64
	for _, d := range a.Destinations {
		sent += d.EventsSent
		blocked += d.EventsBlocked
	}
	require.Equal(t, uint64(n), sent+blocked)
	require.Equal(t, uint64(n/5), blocked)
	var js bytes.Buffer
	require.NoError(t, json.NewEncoder(&js).Encode(a))
	t.Logf("access report for a user with %d decisions (plus %d of another user): %s", n, n, took)
}

// requireSelfContained checks that an HTML report makes no external request.
func requireSelfContained(t testing.TB, html string) {
	t.Helper()
	low := strings.ToLower(html)
	for _, bad := range []string{"<script", "<link", "<img", "@import", "url(", "src=", "http://", "https://"} {
		require.NotContains(t, low, bad)
	}
}
