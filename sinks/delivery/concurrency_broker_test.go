package delivery_test

import (
	"fmt"
	"strings"
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
	t.Parallel()
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

// TestUserOrderHoldsAcrossOverlappingPolls: one busy user has far more events than one poll
// takes (delivery.concurrency 4 and max_batch 1 make polls of 64), spread among other users'
// events. The next poll's events start while the busy user's lane of the poll before is still
// sending; its lane of the next poll must wait for that one, or its requests would interleave.
func TestUserOrderHoldsAcrossOverlappingPolls(t *testing.T) {
	t.Parallel()
	const busy, others = 150, 60
	hook := standin.New("webhook", standin.WithWebhookSecret(chaosEnv["HOOK_SECRET"]))
	t.Cleanup(hook.Close)
	hook.SetFailures(standin.Fault{Hang: 10 * time.Millisecond, Count: -1})
	e := newBrokerEnv(t, "  concurrency: 4", fmt.Sprintf(oneEventHookPolicy, hook.URL))
	d := e.followDeliveries()

	var evs []*schemas.FilteredEvent
	var want []string // the busy user's events in topic order
	for i := range busy {
		id := fmt.Sprintf("busy-%03d", i)
		want = append(want, id)
		evs = append(evs, filtered("hook", "necessary", id, "busy", nil))
		if i < others {
			evs = append(evs, filtered("hook", "necessary", fmt.Sprintf("other-%03d", i), fmt.Sprintf("o%03d", i), nil))
		}
	}
	e.produce(evs...)
	e.runSinks(chaosEnv)

	require.Eventually(t, func() bool { return len(d.terminal("hook")) == busy+others }, 60*time.Second, 100*time.Millisecond,
		"not every event reached an end; deliveries:\n%s", d)
	var got []string
	for _, r := range hook.Requests() {
		require.Len(t, r.EventIDs, 1, "max_batch 1: one event per request")
		if id := r.EventIDs[0]; strings.HasPrefix(id, "busy-") {
			got = append(got, id)
		}
	}
	require.Equal(t, want, got, "the busy user's events must reach the vendor in topic order, each once")
}

// TestRebalanceMidStreamKeepsOrderAndOnce: a second runner of the destination joins while the
// first has polls in flight. The first finishes and commits what it sent before it lets the
// partitions go, so the second starts after them: each event reaches the vendor once, and each
// user's events in topic order.
func TestRebalanceMidStreamKeepsOrderAndOnce(t *testing.T) {
	t.Parallel()
	const users, perUser = 40, 25
	hook := standin.New("webhook", standin.WithWebhookSecret(chaosEnv["HOOK_SECRET"]))
	t.Cleanup(hook.Close)
	hook.SetFailures(standin.Fault{Hang: 20 * time.Millisecond, Count: -1})
	e := newBrokerEnv(t, "  concurrency: 4", fmt.Sprintf(oneEventHookPolicy, hook.URL))
	d := e.followDeliveries()

	userOf := map[string]string{}
	want := map[string][]string{}
	var evs []*schemas.FilteredEvent
	for i := range perUser {
		for u := range users {
			user, id := fmt.Sprintf("u%02d", u), fmt.Sprintf("e%02d-%02d", u, i)
			userOf[id] = user
			want[user] = append(want[user], id)
			evs = append(evs, filtered("hook", "necessary", id, user, nil))
		}
	}
	e.produce(evs...)
	e.runSinks(chaosEnv)
	require.Eventually(t, func() bool { return len(hook.Requests()) >= users*perUser/5 }, 60*time.Second, 20*time.Millisecond)
	e.runSinks(chaosEnv) // a second process of the destination: the group rebalances
	require.Less(t, len(hook.Requests()), users*perUser*4/5, "the first runner was almost done when the second joined: nothing tested")
	require.Eventually(t, func() bool { return len(d.terminal("hook")) == users*perUser }, 120*time.Second, 100*time.Millisecond,
		"not every event reached an end; deliveries:\n%s", d)

	got := map[string][]string{}
	for _, r := range hook.Requests() {
		require.Len(t, r.EventIDs, 1, "max_batch 1: one event per request")
		id := r.EventIDs[0]
		got[userOf[id]] = append(got[userOf[id]], id)
	}
	require.Equal(t, want, got, "each user's events must reach the vendor in topic order, each once")
}
