package delivery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

func testItems(n, attempts int) []*item {
	items := make([]*item, n)
	for i := range items {
		items[i] = &item{ev: &schemas.FilteredEvent{EventID: string(rune('a' + i))}, attempts: attempts}
	}
	return items
}

func TestJudge(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	backoff := func(attempt int, retryAfter time.Duration) time.Duration {
		return time.Duration(attempt)*time.Second + retryAfter
	}

	t.Run("delivered", func(t *testing.T) {
		items := testItems(2, 0)
		outs, rest := judge(items, sdk.Verdict{Class: sdk.Delivered, Status: 200}, 5*time.Millisecond, now, 3, backoff)
		require.Empty(t, rest)
		require.Equal(t, []outcome{
			{it: items[0], status: StatusDelivered, attempt: 1, http: 200, latency: 5 * time.Millisecond},
			{it: items[1], status: StatusDelivered, attempt: 1, http: 200, latency: 5 * time.Millisecond},
		}, outs)
		require.Zero(t, items[0].attempts, "judge must not change the items")
	})

	t.Run("retry until the limit, then dead-letter", func(t *testing.T) {
		items := append(testItems(1, 0), testItems(1, 2)...)
		outs, _ := judge(items, sdk.Verdict{Class: sdk.Retry, Reason: "http_503", Status: 503, RetryAfter: time.Second}, 0, now, 3, backoff)
		require.Equal(t, StatusRetrying, outs[0].status)
		require.Equal(t, now.Add(2*time.Second), outs[0].notBefore)
		require.Equal(t, "retry", outs[0].failed)
		require.Equal(t, StatusDeadLettered, outs[1].status)
		require.Equal(t, 3, outs[1].attempt)
		require.Equal(t, "http_503", outs[1].reason)
	})

	t.Run("per-event failure and resend of the rest", func(t *testing.T) {
		items := testItems(3, 0)
		v := sdk.Verdict{Class: sdk.Retry, ResendRest: true, Failed: map[int]string{1: "bad_row"}, Status: 400}
		outs, rest := judge(items, v, 0, now, 3, backoff)
		require.Equal(t, []*item{items[0], items[2]}, rest)
		require.Len(t, outs, 1)
		require.Equal(t, outcome{it: items[1], status: StatusDeadLettered, attempt: 1, http: 400, reason: "bad_row", failed: "permanent"}, outs[0])
	})

	t.Run("replay limit per item", func(t *testing.T) {
		items := testItems(1, 5)
		items[0].limit = 8
		outs, _ := judge(items, sdk.Verdict{Class: sdk.Retry, Reason: "timeout"}, 0, now, 3, backoff)
		require.Equal(t, StatusRetrying, outs[0].status)
	})
}
