package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
)

// written is what the active parts of one table hold.
type written struct{ rows, bytes uint64 }

// writtenPerTable returns the rows and bytes on disk of each table's active parts.
func writtenPerTable(t testing.TB, db *DB) map[string]written {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts
		WHERE database = ? AND active GROUP BY table`, db.Database)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]written{}
	for rows.Next() {
		var table string
		var w written
		require.NoError(t, rows.Scan(&table, &w.rows, &w.bytes))
		out[table] = w
	}
	require.NoError(t, rows.Err())
	return out
}

const writtenDecisions = 10_000

func writtenSample() []schemas.Decision {
	ds := make([]schemas.Decision, writtenDecisions)
	for i := range ds {
		ds[i] = testDecision(i)
	}
	return ds
}

// logWritten prints rows and bytes per decision of each table a decision is written to, and
// checks that a decision is stored twice (decisions and its by-user copy, docs/audit.md).
func logWritten(t *testing.T, label string, w map[string]written) {
	t.Helper()
	var rows, bytes uint64
	for _, table := range []string{"decisions", "decisions_by_user"} {
		t.Logf("%s: %-18s %6d rows (%.3f per decision), %8d bytes on disk (%.1f per decision)", label, table,
			w[table].rows, float64(w[table].rows)/writtenDecisions, w[table].bytes, float64(w[table].bytes)/writtenDecisions)
		rows, bytes = rows+w[table].rows, bytes+w[table].bytes
	}
	t.Logf("%s: all tables: %.3f rows and %.1f bytes per decision", label, float64(rows)/writtenDecisions, float64(bytes)/writtenDecisions)
	require.Equal(t, uint64(writtenDecisions), w["decisions"].rows)
	require.Equal(t, uint64(writtenDecisions), w["decisions_by_user"].rows)
	require.Zero(t, w["decisions_daily"].rows, "no longer filled (schema version 9)")
}

// Rows and bytes each decision costs on one server (figures in the test log, -v).
func TestRowsAndBytesPerDecision(t *testing.T) {
	t.Parallel()
	db := openDB(t, testConfig(t))
	require.NoError(t, db.InsertDecisions(context.Background(), writtenSample()))
	logWritten(t, "server "+db.Version, writtenPerTable(t, db))
}

// The same on the cluster: each replica stores every row.
func TestClusterRowsAndBytesPerDecision(t *testing.T) {
	dbs := replicaDBs(t, clusterConfig(t))
	require.NoError(t, dbs[0].InsertDecisions(context.Background(), writtenSample()))
	for i, db := range dbs {
		require.Eventually(t, func() bool {
			w := writtenPerTable(t, db)
			return w["decisions"].rows == writtenDecisions && w["decisions_by_user"].rows == writtenDecisions
		}, 30*time.Second, 100*time.Millisecond)
		logWritten(t, "replica "+string(rune('1'+i)), writtenPerTable(t, db))
	}
}
