package delivery

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
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
// decoding the record, screening it, the verdict's outcome, the audit record and the metrics —
// everything but the vendor request. b.N counts events.
func BenchmarkPassPerEvent(b *testing.B) {
	cfg := &config.Config{}
	cfg.Kafka.TopicPrefix = "bench."
	cfg.Delivery.MaxAttempts, cfg.Delivery.RetryHorizon, cfg.Delivery.Concurrency = 5, time.Hour, 1
	dest := &policy.Destination{Name: "hook", Type: policy.TypeWebhook, Purpose: "necessary"}
	r := NewRunner(cfg, dest, nopAdapter{max: 100}, zap.NewNop())
	const poll = 1000
	recs := make([]*kgo.Record, poll)
	now := time.Now()
	for i := range recs {
		ev := schemas.FilteredEvent{EventID: fmt.Sprintf("e%06d", i), DecisionID: fmt.Sprintf("d%06d", i), Destination: "hook",
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
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for done := 0; done < b.N; done += poll {
		c := newCycle()
		items := make([]*item, 0, poll)
		for _, rec := range recs {
			it, err := itemFromRecord(rec)
			if err != nil {
				b.Fatal(err)
			}
			items = append(items, it)
		}
		for _, batch := range splitItems(r.adapter, items) {
			r.apply(context.Background(), c, batch, sdk.Verdict{Class: sdk.Delivered, Status: 200}, time.Millisecond, false)
		}
		r.observe(c)
		if out := r.records(c, true); len(out) != poll {
			b.Fatalf("%d records", len(out))
		}
	}
	// CPU time, not wall time: on a shared machine the wall clock also counts other work.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
