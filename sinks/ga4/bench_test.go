package ga4

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
)

// benchEvent is a typical page-level purchase: seven params with engagement_time_msec, numbers,
// plain strings and a non-ASCII title (which takes AppendJSONString's escaping path).
func benchEvent(id string, ts time.Time) *schemas.FilteredEvent {
	ev := testEvent(id, "a-7f3", ts)
	ev.Fields["context.page_title"] = `"Kasse – Schritt 2"`
	ev.Fields["properties.quantity"] = `3`
	return ev
}

func BenchmarkNewRequest(b *testing.B) {
	d := testDest("http://127.0.0.1:1", "context.page_url", "context.page_title", "properties.order_value",
		"properties.currency", "properties.session_id", "properties.quantity")
	a := newAdapter(b, d)
	for _, n := range []int{1, 10, MaxBatch} {
		batch := make([]*schemas.FilteredEvent, n)
		for i := range batch {
			batch[i] = benchEvent(strconv.Itoa(i), time.Now())
		}
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			testenv.LoopCPU(b, func() {
				if _, err := a.NewRequest(ctx, batch); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
