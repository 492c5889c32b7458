package delivery

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// nopAdapter takes every event: the benchmark measures the engine, not a vendor's encoding.
type nopAdapter struct{ max int }

func (a nopAdapter) MaxBatch() int                                  { return a.max }
func (nopAdapter) Validate(*schemas.FilteredEvent, time.Time) error { return nil }
func (nopAdapter) NewRequest(context.Context, []*schemas.FilteredEvent) (*http.Request, error) {
	return nil, fmt.Errorf("not sent")
}
func (nopAdapter) Classify(int, http.Header, []byte, []*schemas.FilteredEvent) sdk.Verdict {
	return sdk.Verdict{Class: sdk.Delivered}
}

// BenchmarkPassPerEvent is the engine's own work for each event of a poll that the vendor takes:
// decoding the record, the ledger check, screening it, the verdict's outcome, the delivery
// ledger (the local store, the entry produced and acknowledged, and the entry read back into
// the store by the ledger's follower), the audit record and the metrics — everything but the
// vendor request. b.N counts events. It needs the test broker (TOLLGATE_TEST_KAFKA).
func BenchmarkPassPerEvent(b *testing.B) {
	brokers := testenv.Kafka(b)
	dir := b.TempDir()
	yaml := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topic_prefix: %q\n  partitions: 3\ningest:\n  write_keys: [wk]\ndelivery:\n  max_attempts: 5\n  concurrency: 1\n  ledger_dir: %q\n",
		brokers, fmt.Sprintf("passbench%d.", time.Now().UnixNano()), dir)
	cfg, err := config.Parse(filepath.Join(dir, "config.yaml"), []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	dest := &policy.Destination{Name: "hook", Type: policy.TypeWebhook, Purpose: "necessary"}
	cfg.Policy = &policy.Policy{Names: []string{"hook"}, Destinations: map[string]*policy.Destination{"hook": dest}}
	log := zap.NewNop()
	cl, err := kafka.NewClient(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg, cl); err != nil {
		b.Fatal(err)
	}
	r := NewRunner(cfg, dest, nopAdapter{max: 100}, log)
	g, gctx := errgroup.WithContext(ctx)
	stop, err := r.startLedger(gctx, g)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); _ = g.Wait(); stop() }()
	const poll = 1000
	now := time.Now()
	// records renders poll n: events of their own, as the processor writes them.
	records := func(n int) []*kgo.Record {
		recs := make([]*kgo.Record, poll)
		for i := range recs {
			ev := schemas.FilteredEvent{EventID: fmt.Sprintf("e%06d-%06d", n, i), DecisionID: fmt.Sprintf("d%06d-%06d", n, i), Destination: "hook",
				Event: "purchase", TimestampMs: now.UnixMilli(), DecidedMs: now.UnixMilli(), UserKey: fmt.Sprintf("u%04d", i%300),
				Purpose: "necessary", Jurisdiction: "EU", Consent: map[string]bool{"necessary": true, "marketing": true},
				Fields: map[string]string{"context.page_url": `"https://shop.example/checkout"`, "properties.order_id": `"o1"`,
					"properties.order_value": "149.5", "properties.currency": `"EUR"`}, PolicyVersion: "v1"}
			v, err := schemas.FilteredEvents.Encode(&ev)
			if err != nil {
				b.Fatal(err)
			}
			recs[i] = &kgo.Record{Topic: "bench.dest.hook", Key: []byte(ev.UserKey), Value: v}
		}
		return recs
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for n, done := 0, 0; done < b.N; n, done = n+1, done+poll {
		b.StopTimer()
		recs := records(n)
		b.StartTimer()
		cpu0 := testenv.CPUTime()
		c := newCycle(sourceMain)
		items := make([]*item, 0, poll)
		for _, rec := range recs {
			it, err := itemFromRecord(rec)
			if err != nil {
				b.Fatal(err)
			}
			items = append(items, it)
		}
		items, claimed := r.skipDelivered(ctx, c, items)
		for _, batch := range splitItems(r.adapter, items) {
			req := newRequest(sourceMain, batch)
			if err := r.journal.intend(ctx, req, time.Now()); err != nil {
				b.Fatal(err)
			}
			r.apply(ctx, c, batch, req, sdk.Verdict{Class: sdk.Delivered, Status: 200}, false, time.Millisecond, false)
		}
		r.inflight.release(claimed)
		r.observe(c)
		if out := r.records(c, true); len(out) != 0 {
			b.Fatalf("%d records besides the journal", len(out))
		}
		if err := r.journal.flush(ctx); err != nil {
			b.Fatal(err)
		}
		// The follower reads the poll's outcomes back (the next poll's check waits for that).
		if err := r.journal.store.sync(ctx, 0); err != nil {
			b.Fatal(err)
		}
		cpu += testenv.CPUTime() - cpu0
	}
	// CPU time, not wall time: on a shared machine the wall clock also counts other work.
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}
