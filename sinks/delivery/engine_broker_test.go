package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
)

const chaosDelivery = `  max_attempts: 12
  initial_backoff: 20ms
  max_backoff: 200ms
  breaker_failures: 3
  breaker_open: 300ms`

const chaosPolicy = `
version: "t1"
purposes: [necessary, analytics, marketing]
destinations:
  ga4:
    type: ga4
    purpose: analytics
    fields: [context.page_url, properties.order_value, properties.currency, properties.order_id]
    config: {endpoint: %q, measurement_id: G-T, api_secret_env: GA4_SECRET, allow_private_network: true, timeout: 300ms}
  meta:
    type: meta_capi
    purpose: marketing
    fields: [context.page_url, context.user_agent, properties.order_value, properties.currency, properties.email, properties.order_id]
    hash: [properties.email]
    config: {endpoint: %q, pixel_id: "123", access_token_env: META_TOKEN, allow_private_network: true, timeout: 300ms}
  tiktok:
    type: tiktok
    purpose: marketing
    fields: [context.page_url, properties.order_value, properties.currency, properties.email, properties.order_id]
    hash: [properties.email]
    config: {endpoint: %q, pixel_code: PX, access_token_env: TT_TOKEN, allow_private_network: true, timeout: 300ms}
  gads:
    type: google_ads
    purpose: marketing
    fields: [properties.order_value, properties.currency, properties.email, properties.order_id]
    hash: [properties.email]
    config: {endpoint: %q, access_token_env: GADS_TOKEN, customer_id: "123-456-7890", conversion_action_id: "42", allow_private_network: true, timeout: 300ms}
  hook:
    type: webhook
    purpose: necessary
    fields: [context.page_url, properties.order_id]
    config: {url: "%s/hook", secret_env: HOOK_SECRET, allow_private_network: true, timeout: 300ms}
`

var chaosEnv = map[string]string{"GA4_SECRET": "s", "META_TOKEN": "t", "TT_TOKEN": "t", "GADS_TOKEN": "t", "HOOK_SECRET": "whsec_c2VjcmV0"}

// requestIDs extracts the event ids a stand-in request carried, reading the vendor's own body
// format (GA4 events carry none: the test sends the order id as a param).
func requestIDs(t *testing.T, kind string, body []byte) []string {
	var b struct {
		Data []struct {
			EventID string `json:"event_id"`
		} `json:"data"`
		Events []struct {
			EventID       string `json:"event_id"`
			TransactionID string `json:"transactionId"`
			Params        struct {
				OrderID string `json:"order_id"`
			} `json:"params"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(body, &b), "%s body", kind)
	var ids []string
	for _, e := range b.Data {
		ids = append(ids, e.EventID)
	}
	for _, e := range b.Events {
		ids = append(ids, e.EventID+e.TransactionID+e.Params.OrderID)
	}
	return ids
}

// TestChaosEveryEventEndsDeliveredOrDeadLettered runs the five adapters against stand-ins that
// fail in every way an HTTP API can — a 429 storm with Retry-After, intermittent 5xx, timeouts
// from hanging requests, connection resets, and one permanently invalid event inside a batch —
// and checks that every event ends delivered or dead-lettered, exactly the invalid ones
// dead-lettered, none lost, none accepted twice by GA4 (which has no dedup key), and that no
// event was sent again before a Retry-After had passed.
func TestChaosEveryEventEndsDeliveredOrDeadLettered(t *testing.T) {
	t.Parallel()
	stand := map[string]*standin.Server{
		"ga4": standin.New("ga4"), "meta": standin.New("meta_capi"), "tiktok": standin.New("tiktok"),
		"gads": standin.New("google_ads"), "hook": standin.New("webhook", standin.WithWebhookSecret(chaosEnv["HOOK_SECRET"])),
	}
	for _, s := range stand {
		t.Cleanup(s.Close)
	}
	e := newBrokerEnv(t, chaosDelivery, fmt.Sprintf(chaosPolicy, stand["ga4"].URL, stand["meta"].URL, stand["tiktok"].URL, stand["gads"].URL, stand["hook"].URL))
	hang := standin.Fault{Hang: 3 * time.Second}
	stand["ga4"].SetFailures(standin.Fault{Status: 500}, standin.Fault{}, standin.Fault{Reset: true}, hang,
		standin.Fault{Status: 503, RetryAfter: "1"}, standin.Fault{}, standin.Fault{Reset: true}, standin.Fault{Status: 500, Count: 2})
	stand["meta"].SetFailures(standin.Fault{Status: 429, RetryAfter: "1", Count: 4}, standin.Fault{Status: 500}, hang, standin.Fault{Reset: true})
	stand["tiktok"].SetFailures(standin.Fault{Status: 429, RetryAfter: "1", Count: 3}, standin.Fault{Status: 500}, standin.Fault{Reset: true}, hang)
	stand["gads"].SetFailures(standin.Fault{Status: 429, RetryAfter: "1"}, standin.Fault{Status: 500}, standin.Fault{Reset: true})
	stand["hook"].SetFailures(standin.Fault{Reset: true}, standin.Fault{Status: 503, RetryAfter: "1"}, hang, standin.Fault{Status: 502})

	const perDest, users = 40, 8
	bad := map[string]string{}
	var evs []*schemas.FilteredEvent
	for _, name := range e.cfg.Policy.Names {
		dest := e.cfg.Policy.Destinations[name]
		for i := range perDest {
			evs = append(evs, filtered(name, dest.Purpose, fmt.Sprintf("%s-%03d", name, i), fmt.Sprintf("u%d", i%users), nil))
		}
		if name != "ga4" { // GA4 accepts anything, as it does
			bad[name] = fmt.Sprintf("%s-%03d", name, 17)
			stand[name].RejectEvents(bad[name])
		}
	}
	d := e.followDeliveries()
	e.produce(evs...)
	e.runSinks(chaosEnv)

	require.Eventually(t, func() bool {
		for _, name := range e.cfg.Policy.Names {
			if len(d.terminal(name)) < perDest {
				return false
			}
		}
		return true
	}, 90*time.Second, 100*time.Millisecond, "not every event reached an end; deliveries:\n%s", d)

	for _, name := range e.cfg.Policy.Names {
		term := d.terminal(name)
		var delivered []string
		doubt := map[string]bool{} // in doubt and not sent again (GA4's on_doubt: skip)
		for id, status := range term {
			want := delivery.StatusDelivered
			if id == bad[name] {
				want = delivery.StatusDeadLettered
			}
			if status == delivery.StatusInDoubt && name == "ga4" {
				doubt[id] = true
				continue
			}
			require.Equal(t, want, status, "%s %s", name, id)
			if status == delivery.StatusDelivered {
				delivered = append(delivered, id)
			}
		}
		accepted := map[string]int{}
		retryAt := map[string]time.Time{} // event id -> earliest next attempt its Retry-After allows
		for _, r := range stand[name].Requests() {
			ids := requestIDs(t, stand[name].Kind, r.Body)
			for _, id := range ids {
				require.False(t, r.At.Before(retryAt[id]), "%s %s sent again before its Retry-After", name, id)
				if r.Accepted {
					accepted[id]++
				}
			}
			if r.Status == 429 || r.Status == 503 { // every such fault above answers Retry-After: 1
				for _, id := range ids {
					retryAt[id] = r.At.Add(time.Second)
				}
			}
		}
		got := make([]string, 0, len(accepted))
		for id, n := range accepted {
			if name == "ga4" {
				require.Equal(t, 1, n, "GA4 has no dedup key: %s accepted %d times", id, n)
			}
			if !doubt[id] { // the audit says in_doubt: the stand-in may or may not have it
				got = append(got, id)
			}
		}
		slices.Sort(got)
		slices.Sort(delivered)
		require.Equal(t, delivered, got, "%s: events the vendor accepted vs events recorded delivered", name)
	}
}

// TestHangingVendorDoesNotStallItsPartition: while Meta hangs every request, the main consumer
// hands its events to the retry topic (the breaker opens after a few timeouts) and commits, so
// its lag drops to zero without a single event reaching Meta; once Meta answers again, every
// event is delivered.
func TestHangingVendorDoesNotStallItsPartition(t *testing.T) {
	t.Parallel()
	meta := standin.New("meta_capi")
	t.Cleanup(meta.Close)
	meta.SetFailures(standin.Fault{Hang: time.Hour, Count: -1})
	e := newBrokerEnv(t, chaosDelivery, fmt.Sprintf(onlyMetaPolicy, meta.URL))
	d := e.followDeliveries()
	e.runSinks(chaosEnv)
	const n = 300
	for i := range n {
		e.produce(filtered("meta", "marketing", fmt.Sprintf("m-%03d", i), fmt.Sprintf("u%d", i%20), nil))
	}
	adm := kadm.NewClient(e.cl)
	topic := e.cfg.Topic(config.DestTopic("meta"))
	require.Eventually(t, func() bool {
		lag, err := adm.Lag(context.Background(), e.cfg.SinkGroup("meta"))
		if err != nil || lag.Error() != nil {
			return false
		}
		total := int64(0)
		committed := int64(0)
		for _, l := range lag[e.cfg.SinkGroup("meta")].Lag[topic] {
			total += l.Lag
			committed += l.Commit.At
		}
		return committed == n && total == 0
	}, 60*time.Second, 100*time.Millisecond, "the main topic did not move past a hanging vendor")
	require.Empty(t, meta.EventIDs(), "nothing can have reached a hanging Meta")

	meta.SetFailures()
	require.Eventually(t, func() bool { return len(d.terminal("meta")) == n }, 60*time.Second, 100*time.Millisecond,
		"events did not all end after Meta recovered; deliveries:\n%s", d)
	for id, status := range d.terminal("meta") {
		require.Equal(t, delivery.StatusDelivered, status, id)
	}
}

const onlyMetaPolicy = `
version: "t1"
purposes: [necessary, analytics, marketing]
destinations:
  meta:
    type: meta_capi
    purpose: marketing
    fields: [context.page_url, context.user_agent, properties.order_value, properties.currency, properties.email, properties.order_id]
    hash: [properties.email]
    config: {endpoint: %q, pixel_id: "123", access_token_env: META_TOKEN, allow_private_network: true, timeout: 300ms}
`

// TestWithdrawalBlocksEventsWaitingForRetry: Meta fails while events of three users wait in the
// retry topic; one user withdraws marketing and at once grants it again, one is erased, one does
// nothing. Once Meta answers, the first two users' waiting events are blocked (withdrawn, erased)
// and never reach Meta — the re-grant does not reach back to events decided before the
// withdrawal — while a new event of the re-granting user, decided after, is delivered.
func TestWithdrawalBlocksEventsWaitingForRetry(t *testing.T) {
	t.Parallel()
	meta := standin.New("meta_capi")
	t.Cleanup(meta.Close)
	meta.SetFailures(standin.Fault{Status: 503, Count: -1})
	e := newBrokerEnv(t, "  max_attempts: 1000\n  initial_backoff: 20ms\n  max_backoff: 100ms\n  breaker_failures: 1000", fmt.Sprintf(onlyMetaPolicy, meta.URL))
	d := e.followDeliveries()
	e.runSinks(chaosEnv)
	var ids []string
	for _, u := range []string{"withdrawer", "erased", "keeper"} {
		for i := range 5 {
			id := fmt.Sprintf("%s-%d", u, i)
			ids = append(ids, id)
			e.produce(filtered("meta", "marketing", id, u, nil))
		}
	}
	require.Eventually(t, func() bool {
		by := d.byEvent("meta")
		for _, id := range ids {
			if len(by[id]) == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "events never attempted")

	e.produceConsent(&schemas.ConsentUpdate{UserKey: "withdrawer", Consent: map[string]bool{"marketing": false}})
	e.produceConsent(&schemas.ConsentUpdate{UserKey: "withdrawer", Consent: map[string]bool{"marketing": true}})
	e.produceConsent(&schemas.ConsentUpdate{UserKey: "erased", Consent: map[string]bool{"marketing": true}, Erased: true})
	require.Eventually(t, func() bool {
		term := d.terminal("meta")
		for _, id := range ids[:10] {
			if term[id] != delivery.StatusBlocked {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "waiting events of the withdrawn and erased users were not blocked; deliveries:\n%s", d)
	meta.SetFailures()
	later := filtered("meta", "marketing", "withdrawer-after-regrant", "withdrawer", nil)
	e.produce(later)
	require.Eventually(t, func() bool {
		term := d.terminal("meta")
		for _, id := range append(ids[10:], later.EventID) {
			if term[id] != delivery.StatusDelivered {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the keeper's events were not delivered; deliveries:\n%s", d)

	by := d.byEvent("meta")
	for _, id := range ids[:10] {
		last := by[id][len(by[id])-1]
		want := delivery.BlockedWithdrawn
		if id[0] == 'e' {
			want = delivery.BlockedErased
		}
		require.Equal(t, want, last.Error, id)
	}
	got := meta.EventIDs()
	slices.Sort(got)
	require.Equal(t, []string{"keeper-0", "keeper-1", "keeper-2", "keeper-3", "keeper-4", "withdrawer-after-regrant"}, got)
}
