package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/deploy/harness"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/cpustat"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// The one-request-per-event phase measures delivery alone, the shape of many webhook receivers:
// a backlog of events already decided is put on a webhook destination's topic, then a sink for
// that destination alone (webhook max_batch: 1) delivers it to a receiver that answers each
// request after a fixed latency, as a real one over the network would.

// oneByOneDest is the phase's destination; it is not in the policy of the other phases.
const oneByOneDest = "onebyone"

// receiver is a webhook receiver that answers 200 after latency, counting requests and event ids.
type receiver struct {
	latency  time.Duration
	requests atomic.Int64
	mu       sync.Mutex
	ids      map[string]int
	first    time.Time
	last     time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	time.Sleep(rc.latency)
	var b struct {
		Events []struct {
			EventID string `json:"event_id"`
		} `json:"events"`
	}
	_ = json.Unmarshal(body, &b)
	now := time.Now()
	rc.mu.Lock()
	if rc.first.IsZero() {
		rc.first = now
	}
	rc.last = now
	for _, e := range b.Events {
		rc.ids[e.EventID]++
	}
	rc.mu.Unlock()
	rc.requests.Add(1)
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) unique() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.ids)
}

// oneByOne runs the phase and returns its figures.
func oneByOne(ctx context.Context, o options, dir, prefix string, env []string) (map[string]any, error) {
	logf("one request per event: %d events to a webhook answering in %s (max_batch 1)", o.oneEvents, o.oneLatency)
	rc := &receiver{latency: o.oneLatency, ids: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	sub := filepath.Join(dir, oneByOneDest)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	pol := fmt.Sprintf(`version: "bench"
purposes: [necessary]
destinations:
  %s:
    type: webhook
    purpose: necessary
    fields: [context.page_url, properties.order_id]
    config: {url: "http://%s/hook", secret_env: OPS_HOOK_SECRET, allow_private_network: true, max_batch: 1}
`, oneByOneDest, ln.Addr())
	conc := ""
	if o.oneConcurrency > 0 {
		conc = fmt.Sprintf("  concurrency: %d\n", o.oneConcurrency)
	}
	cfgText := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topic_prefix: %q\n  partitions: %d\ningest:\n  write_keys: [wk_bench]\ndelivery:\n  max_attempts: 3\n%spolicy_file: policy.yaml\n",
		o.brokers, prefix, o.partitions, conc)
	if err := os.WriteFile(filepath.Join(sub, "policy.yaml"), []byte(pol), 0o600); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(sub, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cfg, cl); err != nil {
		return nil, err
	}
	if err := produceBacklog(ctx, cl, cfg, o.oneEvents); err != nil {
		return nil, err
	}

	var pprofAddr map[string]string
	e := env
	if o.profileDir != "" && o.profilePhase == "onebyone" {
		pprofAddr = map[string]string{"sink_onebyone": harness.FreeAddr()}
		e = append(append([]string{}, env...), "TOLLGATE_DEBUG_PPROF_LISTEN="+pprofAddr["sink_onebyone"])
	}
	p, err := startProc("sink_onebyone", o.bin, e, sub, "sink", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	var profWG sync.WaitGroup
	if pprofAddr != nil {
		profWG.Add(1)
		go func() { defer profWG.Done(); saveProfiles(ctx, o.profileDir, o.profileFor, pprofAddr) }()
	}
	deadline := time.Now().Add(5 * time.Minute)
	// The machine's CPU is read from the first request on (within the loop's 100 ms), beside
	// the span events_per_s is measured over.
	svc := services(o.servicesDir)
	var cpuBefore cpustat.Reading
	var kafkaBefore float64
	cpuOK := false
	for rc.unique() < o.oneEvents && time.Now().Before(deadline) && ctx.Err() == nil && p.alive() {
		p.sample()
		if !cpuOK && rc.requests.Load() > 0 {
			for _, sp := range svc {
				sp.sample()
			}
			kafkaBefore = serviceCPU(svc, "kafka")
			var err error
			cpuBefore, err = cpustat.ReadNow()
			cpuOK = err == nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.sample()
	cpuAfter, _ := cpustat.ReadNow()
	for _, sp := range svc {
		sp.sample()
	}
	profWG.Wait()
	rc.mu.Lock()
	span := rc.last.Sub(rc.first)
	dup := 0
	for _, n := range rc.ids {
		dup += n - 1
	}
	unique := len(rc.ids)
	rc.mu.Unlock()
	out := map[string]any{"events": o.oneEvents, "delivered_unique": unique, "duplicates": dup, "requests": rc.requests.Load(),
		"receiver_latency_ms": o.oneLatency.Milliseconds(), "concurrency": cfg.Delivery.Concurrency,
		"sink_cpu_s": round(p.cpuSeconds(), 2), "sink_peak_rss_mb": round(float64(p.hwmKB)/1024, 1)}
	if unique > 0 && span > 0 {
		out["events_per_s"] = round(float64(unique)/span.Seconds(), 0)
		out["seconds"] = round(span.Seconds(), 1)
		perEvent := func(s float64) float64 { return round(s/float64(unique)*1e6, 1) }
		out["sink_cpu_us_per_event"] = perEvent(p.cpuSeconds())
		if cpuOK {
			// The whole machine from the first request to the last answer: a share near 1 says
			// more concurrency cannot raise events_per_s here, only less CPU per request.
			d := cpuAfter.Sub(cpuBefore)
			out["machine_busy_share"] = round(d.BusyShare(), 2)
			out["machine_cpu_us_per_event"] = perEvent(d.Busy)
			out["receiver_cpu_us_per_event"] = perEvent(d.Self) // the bench process: the receiver, and its polling
		}
		if cpuOK && len(svc) > 0 {
			out["kafka_cpu_us_per_event"] = perEvent(serviceCPU(svc, "kafka") - kafkaBefore)
		}
	}
	logf("one request per event: %v", out)
	return out, nil
}

// serviceCPU is the named watched service's CPU seconds at its last sample (0 if not watched).
func serviceCPU(svc []*proc, name string) float64 {
	for _, sp := range svc {
		if sp.name == name {
			return sp.cpuSeconds()
		}
	}
	return 0
}

// produceBacklog puts n decided events on the phase's destination topic, for 1,000 users.
func produceBacklog(ctx context.Context, cl *kgo.Client, cfg *config.Config, n int) error {
	topic := cfg.Topic(config.DestTopic(oneByOneDest))
	now := time.Now()
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprintf("o%08d", i)
		ev := schemas.FilteredEvent{EventID: id, DecisionID: "d-" + id, Destination: oneByOneDest, Event: "purchase",
			TimestampMs: now.UnixMilli(), DecidedMs: now.UnixMilli(), UserKey: fmt.Sprintf("u-o-%04d", i%1000),
			Purpose: "necessary", Jurisdiction: "EU", Consent: map[string]bool{"necessary": true},
			Fields: map[string]string{"context.page_url": `"https://shop.example/checkout"`, "properties.order_id": `"` + id + `"`}, PolicyVersion: "bench"}
		b, err := schemas.FilteredEvents.Encode(&ev)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(ev.UserKey), Value: bytes.Clone(b)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce backlog: %w", err)
	}
	return nil
}
