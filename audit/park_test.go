package audit

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/stretchr/testify/require"
)

// fakeTable refuses for good (code 395) any insert that holds a bad row, as a table check does,
// and records what it took and what was parked.
type fakeTable struct {
	bad      map[int]bool
	inserts  int
	inserted []int
	parked   []int64
}

func (f *fakeTable) insert(_ context.Context, rows []int) error {
	f.inserts++
	for _, r := range rows {
		if f.bad[r] {
			return &proto.Exception{Code: 395, Message: "refused"}
		}
	}
	f.inserted = append(f.inserted, rows...)
	return nil
}

func (f *fakeTable) park(_ context.Context, src []source, cause error) error {
	if !permanent(cause) {
		return errors.New("parked a row for a transient error")
	}
	for _, s := range src {
		f.parked = append(f.parked, s.offset)
	}
	return nil
}

func rowsAndSources(n int) ([]int, []source) {
	rows, src := make([]int, n), make([]source, n)
	for i := range rows {
		rows[i], src[i] = i, source{offset: int64(i)}
	}
	return rows, src
}

// Bisection parks exactly the rows refused alone and inserts every other one.
func TestInsertOrParkIsolatesRefusedRows(t *testing.T) {
	f := &fakeTable{bad: map[int]bool{7: true, 5000: true, 9999: true}}
	rows, src := rowsAndSources(10000)
	require.NoError(t, insertOrPark(context.Background(), "decisions", rows, src, f.insert, f.park))
	require.Equal(t, []int64{7, 5000, 9999}, f.parked)
	require.Len(t, f.inserted, 10000-3)
	slices.Sort(f.inserted)
	require.Equal(t, 6, f.inserted[6])
	require.Equal(t, 8, f.inserted[7])
	require.Less(t, f.inserts, 3*2*14+1, "about 2 inserts per level per bad row")
}

// A batch refused whole is parked whole within a bounded number of inserts, not 2 × batch.
func TestInsertOrParkBoundsTheSearch(t *testing.T) {
	rows, src := rowsAndSources(10000)
	f := &fakeTable{bad: map[int]bool{}}
	for _, r := range rows {
		f.bad[r] = true
	}
	require.NoError(t, insertOrPark(context.Background(), "decisions", rows, src, f.insert, f.park))
	require.Empty(t, f.inserted)
	slices.Sort(f.parked)
	require.Len(t, f.parked, 10000)
	require.Equal(t, int64(9999), f.parked[9999])
	require.LessOrEqual(t, f.inserts, 2*maxRefusals)
}

// A transient error stops the search and is returned, for the flush to be retried; nothing of
// the failing part is parked.
func TestInsertOrParkReturnsTransientErrors(t *testing.T) {
	rows, src := rowsAndSources(100)
	f := &fakeTable{bad: map[int]bool{3: true}}
	calls := 0
	insert := func(ctx context.Context, rs []int) error {
		calls++
		if calls > 1 && slices.Contains(rs, 60) {
			return context.DeadlineExceeded
		}
		return f.insert(ctx, rs)
	}
	err := insertOrPark(context.Background(), "decisions", rows, src, insert, f.park)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []int64{3}, f.parked)
	require.NotContains(t, f.inserted, 60)
}
