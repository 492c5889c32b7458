package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The part counter's count is the full count's, after inserts (new parts) and after a merge
// (parts replaced by one), while it reads only the parts it has not counted yet.
func TestPartCounter(t *testing.T) {
	testenv.ClickHouse(t)
	ch := chClient{base: "http://" + testenv.ClickHouseHTTP(), http: &http.Client{Timeout: 30 * time.Second}}
	ctx := context.Background()
	db := "tollgate_benchtest_" + randomHex(t)
	exec := func(q string) {
		t.Helper()
		_, err := ch.query(ctx, q)
		require.NoError(t, err, q)
	}
	exec("CREATE DATABASE " + db)
	t.Cleanup(func() { _, _ = ch.query(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	exec("CREATE TABLE " + db + ".d (dest String, id String) ENGINE = MergeTree ORDER BY (dest, id)")
	where := "dest = 'ops' AND id >= 'b' AND id < 'c'"
	pc := &partCounter{ch: ch, db: db, table: "d", where: where}
	full := ch.countOf("SELECT count() FROM " + db + ".d WHERE " + where)
	check := func(want int64) {
		t.Helper()
		got, err := pc.count(ctx)
		require.NoError(t, err)
		require.Equal(t, want, got)
		n, err := full(ctx)
		require.NoError(t, err)
		require.Equal(t, n, got, "the full count")
	}
	check(0)
	for i, rows := range []string{"('ops','b1'), ('ops','b2'), ('ga4','b3'), ('ops','a1')", "('ops','b4')", "('ops','c1'), ('meta','b5')"} {
		exec("INSERT INTO " + db + ".d VALUES " + rows)
		check([]int64{2, 3, 3}[i])
	}
	require.Len(t, pc.counts, 3, "a part each insert, each counted once")
	exec("OPTIMIZE TABLE " + db + ".d FINAL")
	check(3)
	require.Len(t, pc.counts, 1, fmt.Sprintf("the merged part only: %v", pc.counts))
}
