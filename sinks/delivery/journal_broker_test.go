package delivery_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/standin"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
)

// TestJournalRecordsPerEvent counts the delivery journal's Kafka records per event delivered,
// for a vendor that takes one user's events per request (GA4: one client_id a request) and one
// that batches (Meta: up to 1,000 events), both answering after 10 ms, at the default
// concurrency. The journal writes the intents and outcomes of the same moment in one record:
// GA4 must cost far fewer than the two records per request it cost when each intent and outcome
// was a record of its own (`go test -run TestJournalRecordsPerEvent -v` prints the figures).
func TestJournalRecordsPerEvent(t *testing.T) {
	const users, perUser = 1500, 3
	ga4, meta := standin.New("ga4"), standin.New("meta_capi")
	t.Cleanup(ga4.Close)
	t.Cleanup(meta.Close)
	slow := standin.Fault{Hang: 10 * time.Millisecond, Count: -1}
	ga4.SetFailures(slow)
	meta.SetFailures(slow)
	// A timeout far above the stand-ins' 10 ms: a request in doubt would make the counts moot.
	policy := strings.ReplaceAll(fmt.Sprintf(ga4AndMetaPolicy, ga4.URL, meta.URL), "timeout: 300ms", "timeout: 10s")
	e := newBrokerEnv(t, "  max_attempts: 3", policy)
	d := e.followDeliveries()
	var evs []*schemas.FilteredEvent
	for i := range perUser {
		for u := range users {
			user := fmt.Sprintf("u%04d", u)
			evs = append(evs, filtered("ga4", "analytics", fmt.Sprintf("g%04d-%d", u, i), user, nil),
				filtered("meta", "marketing", fmt.Sprintf("m%04d-%d", u, i), user, nil))
		}
	}
	e.produce(evs...)
	e.runSinks(chaosEnv)
	const n = users * perUser
	require.Eventually(t, func() bool { return len(d.terminal("ga4")) == n && len(d.terminal("meta")) == n },
		2*time.Minute, 100*time.Millisecond, "not every event reached an end")
	for _, dest := range []string{"ga4", "meta"} {
		for id, status := range d.terminal(dest) {
			require.Equal(t, delivery.StatusDelivered, status, id)
		}
	}

	perEvent := map[string]float64{}
	for dest, s := range map[string]*standin.Server{"ga4": ga4, "meta": meta} {
		recs := journalRecords(t, e, dest)
		reqs := len(s.Requests())
		perEvent[dest] = float64(recs) / n
		t.Logf("%s: %d events in %d requests (%.2f events a request): %d journal records, %.3f per event, %.3f per request",
			dest, n, reqs, float64(n)/float64(reqs), recs, perEvent[dest], float64(recs)/float64(reqs))
	}
	// Two records per request (an intent and an outcome each) would be ~0.67 per event for GA4.
	require.Less(t, perEvent["ga4"], 0.2, "GA4's journal: records per event")
	require.Less(t, perEvent["meta"], 0.05, "Meta's journal: records per event")
}

// journalRecords is the destination's journal records so far (end minus start offsets, all
// partitions), once the journal stops growing.
func journalRecords(t *testing.T, e *brokerEnv, dest string) int64 {
	adm := kadm.NewClient(e.cl)
	topic := e.cfg.Topic(config.LedgerTopic(dest))
	count := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		starts, err := adm.ListStartOffsets(ctx, topic)
		require.NoError(t, err)
		ends, err := adm.ListEndOffsets(ctx, topic)
		require.NoError(t, err)
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			s, _ := starts.Lookup(topic, o.Partition)
			n += o.Offset - s.Offset
		})
		return n
	}
	last := int64(-1)
	require.Eventually(t, func() bool {
		n := count()
		same := n == last
		last = n
		return same
	}, 30*time.Second, 500*time.Millisecond)
	return last
}
