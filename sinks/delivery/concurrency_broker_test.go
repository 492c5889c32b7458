package delivery_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
)

const oneEventHookPolicy = `
version: "t1"
purposes: [necessary]
destinations:
  hook:
    type: webhook
    purpose: necessary
    fields: [properties.order_id]
    config: {url: "%s/hook", secret_env: HOOK_SECRET, allow_private_network: true, max_batch: 1, timeout: 10s}
`

// TestConcurrentRequestsKeepEachUsersOrder: against a webhook that takes 200 ms per request, with
// one event per request, the sink has several requests in flight at once (never more than
// delivery.concurrency), and each user's events still arrive in the order they were produced.
func TestConcurrentRequestsKeepEachUsersOrder(t *testing.T) {
	const concurrency, users, perUser = 4, 16, 6
	hook := standin.New("webhook", standin.WithWebhookSecret(chaosEnv["HOOK_SECRET"]))
	t.Cleanup(hook.Close)
	hook.SetFailures(standin.Fault{Hang: 200 * time.Millisecond, Count: -1})
	e := newBrokerEnv(t, fmt.Sprintf("  concurrency: %d", concurrency), fmt.Sprintf(oneEventHookPolicy, hook.URL))
	d := e.followDeliveries()

	userOf := map[string]string{}
	want := map[string][]string{} // per user, event ids in topic order
	var evs []*schemas.FilteredEvent
	for i := range perUser {
		for u := range users {
			user, id := fmt.Sprintf("u%02d", u), fmt.Sprintf("e%02d-%d", u, i)
			userOf[id] = user
			want[user] = append(want[user], id)
			evs = append(evs, filtered("hook", "necessary", id, user, nil))
		}
	}
	e.produce(evs...) // one produce call: each user's events are in one partition, in this order
	e.runSinks(chaosEnv)

	require.Eventually(t, func() bool { return len(d.terminal("hook")) == users*perUser }, 60*time.Second, 100*time.Millisecond,
		"not every event reached an end; deliveries:\n%s", d)
	for id, status := range d.terminal("hook") {
		require.Equal(t, delivery.StatusDelivered, status, id)
	}

	got := map[string][]string{}
	for _, r := range hook.Requests() {
		require.Len(t, r.EventIDs, 1, "max_batch 1: one event per request")
		id := r.EventIDs[0]
		got[userOf[id]] = append(got[userOf[id]], id)
	}
	require.Equal(t, want, got, "each user's events must reach the vendor in topic order, each once")
	require.Greater(t, hook.MaxConcurrent(), 1, "requests never overlapped")
	require.LessOrEqual(t, hook.MaxConcurrent(), concurrency, "more requests in flight than delivery.concurrency")
}
