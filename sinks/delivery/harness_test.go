package delivery_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/schemas"
	"github.com/tollgate-dev/tollgate/sinks/delivery"
	"github.com/tollgate-dev/tollgate/sinks/registry"
)

// The tests in this file's package run the delivery engine against the real Kafka broker of
// internal/testenv: TOLLGATE_TEST_KAFKA (make test sets it), else a container when Docker
// answers. Without either they fail, saying how to start it; with -short they are skipped on
// purpose (make test-unit).

// brokerEnv is one test's topics (a fresh prefix) and config.
type brokerEnv struct {
	t   *testing.T
	cfg *config.Config
	cl  *kgo.Client
	log *zap.Logger
}

func newBrokerEnv(t *testing.T, deliveryYAML, policyYAML string) *brokerEnv {
	t.Helper()
	testKafka := testenv.Kafka(t) // skips under -short
	dir := t.TempDir()
	prefix := fmt.Sprintf("sinktest%d%04d.", time.Now().UnixNano(), rand.IntN(10000))
	cfgYAML := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topic_prefix: %q\n  partitions: 3\ningest:\n  write_keys: [wk]\ndelivery:\n%s\npolicy_file: policy.yaml\n",
		testKafka, prefix, deliveryYAML)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfgYAML), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policyYAML), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	cl, err := kafka.NewClient(cfg, log)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, cfg, cl))
	return &brokerEnv{t: t, cfg: cfg, cl: cl, log: log}
}

// runSinks starts one runner per destination until the test ends.
func (e *brokerEnv) runSinks(env map[string]string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range e.cfg.Policy.Names {
		dest := e.cfg.Policy.Destinations[name]
		ad, err := registry.New(dest, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		require.NoError(e.t, err)
		r := delivery.NewRunner(e.cfg, dest, ad, e.log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				e.t.Errorf("runner %s: %v", name, err)
			}
		}()
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

// produce writes filtered events to their destinations' topics.
func (e *brokerEnv) produce(evs ...*schemas.FilteredEvent) {
	var recs []*kgo.Record
	for _, ev := range evs {
		b, err := schemas.FilteredEvents.Encode(ev)
		require.NoError(e.t, err)
		recs = append(recs, &kgo.Record{Topic: e.cfg.Topic(config.DestTopic(ev.Destination)), Key: []byte(ev.UserKey), Value: b})
	}
	require.NoError(e.t, e.cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// produceConsent writes a user's full consent state to the consent-state topic, as the
// processor does.
func (e *brokerEnv) produceConsent(u *schemas.ConsentUpdate) time.Time {
	b, err := schemas.ConsentUpdates.Encode(u)
	require.NoError(e.t, err)
	r := &kgo.Record{Topic: e.cfg.Topic(config.TopicState), Key: []byte(u.UserKey), Value: b}
	require.NoError(e.t, e.cl.ProduceSync(context.Background(), r).FirstErr())
	return r.Timestamp
}

// attempt is one deliveries audit record.
type attempt = schemas.Delivery

// deliveries follows the deliveries topic and the destinations' journals (whose outcomes are
// deliveries rows) from their start, as the audit writer does.
type deliveries struct {
	mu   sync.Mutex
	all  []attempt
	stop func()
	// settledInDoubt are the destinations that do not send events in doubt again: for them an
	// in_doubt row is an end.
	settledInDoubt map[string]bool
}

func (e *brokerEnv) followDeliveries() *deliveries {
	topics := []string{e.cfg.Topic(config.TopicDeliveries)}
	for _, name := range e.cfg.Policy.Names {
		topics = append(topics, e.cfg.Topic(config.LedgerTopic(name)))
	}
	cl, err := kafka.NewClient(e.cfg, e.log, kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliveries{settledInDoubt: map[string]bool{}}
	for name, dest := range e.cfg.Policy.Destinations {
		d.settledInDoubt[name] = !dest.ResendInDoubt()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			f.EachRecord(func(r *kgo.Record) {
				if schemas.Journal.Is(r.Value) {
					j, err := schemas.Journal.Decode(r.Value)
					require.NoError(e.t, err)
					d.mu.Lock()
					d.all = append(d.all, j.Deliveries()...)
					d.mu.Unlock()
					return
				}
				a, err := schemas.Deliveries.Decode(r.Value)
				if err != nil {
					e.t.Errorf("undecodable deliveries record: %v", err)
					return
				}
				d.mu.Lock()
				d.all = append(d.all, a)
				d.mu.Unlock()
			})
		}
	}()
	d.stop = func() { cancel(); <-done; cl.Close() }
	e.t.Cleanup(d.stop)
	return d
}

// byEvent returns the statuses of each event of a destination, in order.
func (d *deliveries) byEvent(dest string) map[string][]attempt {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]attempt{}
	for _, a := range d.all {
		if a.Destination == dest {
			out[a.EventID] = append(out[a.EventID], a)
		}
	}
	return out
}

// terminal returns each event's final status (delivered, dead_lettered, blocked, or in_doubt
// where events in doubt are not sent again), if it has one.
func (d *deliveries) terminal(dest string) map[string]string {
	out := map[string]string{}
	for id, as := range d.byEvent(dest) {
		for _, a := range as {
			if a.Status != delivery.StatusRetrying && (a.Status != delivery.StatusInDoubt || d.settledInDoubt[dest]) {
				if prev, ok := out[id]; ok && prev != a.Status {
					out[id] = prev + "+" + a.Status // two different ends: the test reports it
					continue
				}
				out[id] = a.Status
			}
		}
	}
	return out
}

func (d *deliveries) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, a := range d.all {
		fmt.Fprintf(&b, "%s %s #%d %s %d %s\n", a.Destination, a.EventID, a.Attempt, a.Status, a.HTTPStatus, a.Error)
	}
	return b.String()
}

// filtered returns an event as the processor would have forwarded it.
func filtered(dest, purpose, id, user string, fields map[string]string) *schemas.FilteredEvent {
	now := time.Now()
	f := map[string]string{
		"context.page_url":       `"https://shop.example/checkout"`,
		"context.user_agent":     `"Mozilla/5.0"`,
		"properties.order_value": "149.5",
		"properties.currency":    `"EUR"`,
		"properties.order_id":    `"` + id + `"`,
		"properties.email":       `"` + strings.Repeat("ab", 32) + `"`,
	}
	for k, v := range fields {
		f[k] = v
	}
	return &schemas.FilteredEvent{
		EventID: id, DecisionID: "d-" + id, Destination: dest, Event: "purchase",
		TimestampMs: now.Add(-time.Minute).UnixMilli(), DecidedMs: now.UnixMilli(), UserKey: user,
		Purpose: purpose, Jurisdiction: "EU", Consent: map[string]bool{purpose: true, "marketing": true},
		Fields: f, PolicyVersion: "t1",
	}
}
