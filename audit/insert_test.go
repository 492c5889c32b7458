package audit

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

func TestToDateTime(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want int64 // seconds
	}{
		{0, 0},
		{1_999, 1},
		{1_763_884_800_123, 1_763_884_800},
		{-1, 0}, // before 1970: the column cannot hold it
		{math.MinInt64, 0},
		{(math.MaxUint32 + 5) * 1000, math.MaxUint32}, // after 2106
		{math.MaxInt64, math.MaxUint32},
	} {
		got := toDateTime(tc.ms)
		require.Equal(t, tc.want, got.Unix(), "ms %d", tc.ms)
		require.Equal(t, time.UTC, got.Location())
	}
	require.Equal(t, uint16(0), clampUint16(-3))
	require.Equal(t, uint16(math.MaxUint16), clampUint16(1<<40))
	require.Equal(t, uint32(0), clampUint32(-3))
	require.Equal(t, uint32(math.MaxUint32), clampUint32(1<<40))
}

// The dedup promise of docs/audit.md: a decision written twice (a replay, a restarted writer) is one
// row under FINAL, in both decision tables.
func TestInsertSameDecisionTwiceCountsOnce(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	d := testDecision(7)
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{d}))
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{d}))
	// The same event and destination in a replay run is a different row.
	replayed := d
	replayed.DecisionID, replayed.RunID = "dec-replay", "run-1"
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{replayed, replayed}))

	require.Equal(t, map[string]schemas.Decision{d.DecisionID: truncated(d), replayed.DecisionID: truncated(replayed)}, readDecisions(t, db, "decisions"))
	require.Equal(t, map[string]schemas.Decision{d.DecisionID: truncated(d), replayed.DecisionID: truncated(replayed)}, readDecisions(t, db, "decisions_by_user"))
	n, err := db.CountDecisions(ctx, "")
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)
	n, err = db.CountDecisions(ctx, "run-1")
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)

	del := testDelivery(3)
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{del, del}))
	n, err = db.CountDeliveries(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)
}

// Values a column cannot hold are clamped rather than failing the batch: one odd record must
// not stop the audit trail.
func TestInsertClampsOutOfRangeValues(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	ctx := context.Background()
	d := testDecision(1)
	d.EventTimeMs, d.DecidedMs = -5_000, math.MaxInt64
	d.FieldsSent, d.FieldsStripped = nil, nil
	require.NoError(t, db.InsertDecisions(ctx, []schemas.Decision{d}))
	got := readDecisions(t, db, "decisions")[d.DecisionID]
	require.Equal(t, int64(0), got.EventTimeMs)
	require.Equal(t, int64(math.MaxUint32)*1000, got.DecidedMs)
	require.Empty(t, got.FieldsSent)

	del := schemas.Delivery{EventID: "e", Destination: "ga4", Attempt: 70_000, Status: "delivered", HTTPStatus: -1, LatencyMs: 1 << 40, AtMs: 1_000}
	require.NoError(t, db.InsertDeliveries(ctx, []schemas.Delivery{del}))
	require.Equal(t, []schemas.Delivery{{EventID: "e", Destination: "ga4", Attempt: math.MaxUint16, Status: "delivered",
		HTTPStatus: 0, LatencyMs: math.MaxUint32, AtMs: 1_000}}, readDeliveries(t, db))
}

var strippedAll = []string{"context.page_url", "context.ip", "context.user_agent", "properties.email",
	"properties.phone", "properties.value", "properties.currency", "properties.p1", "properties.p2"}

// BenchmarkInsert measures one insert of 100,000 decisions (rows/s is reported as a metric, and
// the client's own CPU per row as cpu-ns/row: what the audit writer spends, the server apart).
func BenchmarkInsert(b *testing.B) {
	db := openDB(b, testConfig(b))
	ctx := context.Background()
	const n = 100_000
	ds := make([]schemas.Decision, n)
	for i := range ds {
		ds[i] = testDecision(i)
		ds[i].DecisionID = fmt.Sprintf("dec-%d", i)
		ds[i].EventID = fmt.Sprintf("evt-%d", i)
		if ds[i].Outcome == "blocked" { // a blocked event lists every field as stripped
			ds[i].FieldsSent, ds[i].FieldsStripped = []string{}, strippedAll
		}
	}
	iterations := 0
	cpu0 := testenv.CPUTime()
	for b.Loop() {
		if err := db.InsertDecisions(ctx, ds); err != nil {
			b.Fatal(err)
		}
		iterations++
	}
	b.ReportMetric(float64(n*iterations)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(testenv.CPUTime()-cpu0)/float64(n*iterations), "cpu-ns/row")
}
