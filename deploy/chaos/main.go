// Command chaos is `make chaos`: the pipeline under faults, against real services, ending with
// an invariant check. It starts a PRIVATE Kafka and ClickHouse (own ports and state folder,
// deploy/local/services-up.sh), in-process vendor stand-ins, and ingest, process, sink and
// audit as supervised processes. While it sends a steady stream of sample events (retrying
// each request until it gets a 202, as a client should), it:
//
//   - injects a poison record into every topic the pipeline reads;
//   - kill -9s each component twice at random moments (the supervisor restarts it);
//   - runs vendor storms: Meta answers 429, GA4 503 and the webhook 500 for a while;
//   - kill -9s the Kafka broker and starts it again;
//   - kill -9s ClickHouse and keeps it down for a minute.
//
// Then it waits for the pipeline to settle and checks, from ClickHouse and from what the
// stand-ins received: every accepted event has a decision per destination and every forwarded
// decision a final delivery status (losses, must be 0); no vendor received an event its
// decision blocked, nor a raw e-mail address or phone number (forbidden forwards, must be 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
	"github.com/tollgate-dev/tollgate/internal/standin"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

type options struct {
	bin, policy, dir string
	seed             uint64
	traffic          time.Duration
	rate             int
	keepServices     bool
	chDown           time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/tollgate", "tollgate binary")
	flag.StringVar(&o.policy, "policy", "deploy/demo/policy.yaml", "policy (stand-in addresses are rewritten)")
	flag.StringVar(&o.dir, "services-dir", ".services/chaos", "state folder of the private Kafka and ClickHouse")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "random seed of the fault schedule")
	flag.DurationVar(&o.traffic, "duration", 4*time.Minute, "how long traffic and faults run")
	flag.IntVar(&o.rate, "rate", 500, "events per second sent")
	flag.DurationVar(&o.chDown, "clickhouse-down", time.Minute, "how long ClickHouse stays down")
	flag.BoolVar(&o.keepServices, "keep-services", false, "leave the private Kafka and ClickHouse running, with the run's topics and database (otherwise deleted after a run that passed)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (ok bool, err error) {
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return false, err
	}
	svc := services{dir: abs, kafkaPort: 19092, kc: 19093, chTCP: 19000, chHTTP: 18123}
	logf("seed %d; starting the private Kafka (%s) and ClickHouse (%s) in %s", o.seed, svc.kafka(), svc.chAddr(), abs)
	if err := svc.up(""); err != nil {
		return false, err
	}
	if !o.keepServices {
		defer svc.down()
	}
	work, err := os.MkdirTemp("", "tgchaos-")
	if err != nil {
		return false, err
	}
	logf("component logs in %s", work)

	vendors := map[string]*standin.Server{}
	for dest, kind := range map[string]string{"ga4": "ga4", "meta": "meta_capi", "ops": "webhook"} {
		opts := []standin.Option{}
		if kind == "webhook" {
			opts = append(opts, standin.WithWebhookSecret(webhookSecret))
		}
		vendors[dest] = standin.New(kind, opts...)
		defer vendors[dest].Close()
	}
	stamp := time.Now().Format("20060102150405")
	db := "tollgate_chaos_" + stamp
	prefix := "chaos" + stamp + "."
	if !o.keepServices {
		// Registered before the components' stops, so it runs after them. A run that failed
		// keeps its data, for a look with -keep-services' services or their state folder.
		defer func() {
			if ok && err == nil {
				forget(svc, prefix, db)
			} else {
				logf("the run's topics (%s*) and database %s are kept in %s", prefix, db, abs)
			}
		}()
	}
	ingestAddr := harness.FreeAddr()
	if err := writeConfig(work, o.policy, svc, prefix, db, ingestAddr, vendors); err != nil {
		return false, err
	}
	env := []string{"GA4_API_SECRET=chaos-ga4", "META_TOKEN=chaos-meta", "OPS_HOOK_SECRET=" + webhookSecret,
		"TOLLGATE_PROCESSOR_INSTANCE=chaos" + stamp}
	cfg := filepath.Join(work, "config.yaml")
	comps := map[string]*harness.Proc{}
	for _, name := range []string{"ingest", "process", "sink", "audit"} {
		c, stop, err := startComponent(name, o.bin, env, work, name, "--config", cfg)
		if err != nil {
			return false, err
		}
		comps[name] = c
		defer stop()
		if name == "ingest" {
			// No liveness check: the supervisor restarts an ingest that exits while Kafka starts.
			if err := harness.WaitReady(ctx, "http://"+ingestAddr, 90*time.Second); err != nil {
				return false, err
			}
		}
	}

	tr := newTraffic("http://"+ingestAddr, o.rate)
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	var twg sync.WaitGroup
	twg.Add(1)
	go func() { defer twg.Done(); tr.run(tctx) }()

	// Each fault runs at its moment in its own goroutine, so a slow one (a broker restart) does
	// not shift the others, and faults overlap as they would in real life.
	start := time.Now()
	var fwg sync.WaitGroup
	for _, f := range schedule(o, svc, comps, vendors, prefix) {
		fwg.Add(1)
		time.AfterFunc(f.at, func() {
			defer fwg.Done()
			logf("fault at %3.0fs: %s", time.Since(start).Seconds(), f.name)
			if err := f.do(); err != nil {
				logf("fault %s: %v", f.name, err)
			}
		})
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(time.Until(start.Add(o.traffic))):
	}
	stopTraffic()
	twg.Wait()
	fwg.Wait()
	accepted := tr.acceptedIDs()
	logf("traffic stopped: %d events accepted (%d requests answered 5xx or failed and were retried)", len(accepted), tr.retries())

	ch := chClient{base: svc.chURL()}
	res, err := settle(ctx, ch, db, accepted, len(vendors))
	if err != nil {
		return false, err
	}
	res.vendorCheck(vendors)
	if err := res.onceCheck(ctx, ch, db, vendors, tr.resends()); err != nil {
		return false, err
	}
	res.dlq, res.poisoned = dlqCounts(ctx, svc.kafka(), prefix), len(poisonValues)
	printTable(os.Stdout, res, comps, o.seed)
	return res.losses() == 0 && res.forbidden() == 0 && res.twiceOrWrong() == 0, nil
}

// forget deletes a passed run's topics and drops its database once its components have
// stopped. Kept, they made the private broker load every earlier run's topics at each start:
// 3.4 GB after sixty runs here, which once outlasted services-up's 90 s wait.
func forget(svc services, prefix, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := harness.DeleteTopics(ctx, []string{svc.kafka()}, prefix); err != nil {
		logf("the run's topics stay: %v", err)
	}
	if _, err := (chClient{base: svc.chURL()}).rows(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
		logf("the run's database %s stays: %v", db, err)
	}
}

// fault is one scheduled disruption.
type fault struct {
	at   time.Duration
	name string
	do   func() error
}

// schedule returns the faults of a run, in time order: fixed service faults, two random kill -9
// moments per component, and vendor storms.
func schedule(o options, svc services, comps map[string]*harness.Proc, vendors map[string]*standin.Server, prefix string) []fault {
	r := rand.New(rand.NewPCG(o.seed, o.seed^0x5bd1e995))
	span := o.traffic - 20*time.Second
	at := func(lo, hi float64) time.Duration { // a random moment between fractions lo and hi of the span
		return time.Duration((lo + r.Float64()*(hi-lo)) * float64(span))
	}
	fs := []fault{{at: 5 * time.Second, name: "poison record into every topic", do: func() error { return poison(svc.kafka(), prefix, vendors) }}}
	for _, name := range []string{"ingest", "process", "sink", "audit"} {
		c := comps[name]
		for range 2 {
			fs = append(fs, fault{at: at(0.05, 0.95), name: "kill -9 " + name, do: func() error { c.Kill9(); return nil }})
		}
	}
	storm := func(dest string, status int, retryAfter string, d time.Duration) []fault {
		t := at(0.1, 0.6)
		return []fault{
			{at: t, name: fmt.Sprintf("%s storm: every request answered %d for %s", dest, status, d), do: func() error {
				vendors[dest].SetFailures(standin.Fault{Status: status, RetryAfter: retryAfter, Count: -1})
				return nil
			}},
			{at: t + d, name: dest + " storm over", do: func() error { vendors[dest].SetFailures(); return nil }},
		}
	}
	fs = append(fs, storm("meta", 429, "1", 20*time.Second)...)
	fs = append(fs, storm("ga4", 503, "", 15*time.Second)...)
	fs = append(fs, storm("ops", 500, "", 10*time.Second)...)
	kafkaAt := at(0.25, 0.35)
	fs = append(fs, fault{at: kafkaAt, name: "Kafka broker kill -9 and restart", do: func() error {
		if err := svc.kill("kafka", "kafka.Kafka", syscall.SIGKILL); err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		return svc.up("kafka")
	}})
	chAt := at(0.45, 0.55)
	fs = append(fs, fault{at: chAt, name: fmt.Sprintf("ClickHouse kill -9, down for %s", o.chDown), do: func() error {
		if err := svc.kill("clickhouse", "clickhouse", syscall.SIGKILL); err != nil {
			return err
		}
		go func() {
			time.Sleep(o.chDown)
			logf("fault: ClickHouse back up")
			if err := svc.up("clickhouse"); err != nil {
				logf("restart ClickHouse: %v", err)
			}
		}()
		return nil
	}})
	sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	return fs
}

// webhookSecret signs the ops webhook; the stand-in verifies it.
const webhookSecret = "whsec_Y2hhb3Mtb3BzLXNlY3JldA=="

func writeConfig(dir, policyFile string, svc services, prefix, db, ingestAddr string, vendors map[string]*standin.Server) error {
	pol, err := os.ReadFile(policyFile)
	if err != nil {
		return err
	}
	p := strings.NewReplacer(
		"http://127.0.0.1:9101", vendors["ga4"].URL,
		"http://127.0.0.1:9102", vendors["meta"].URL,
		"http://127.0.0.1:9103", vendors["ops"].URL,
	).Replace(string(pol))
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(p), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  topic_prefix: %q
  partitions: 6
clickhouse:
  addr: %q
  database: %q
ingest:
  listen: %q
  write_keys: ["wk_chaos"]
delivery:
  max_attempts: 5
  initial_backoff: 200ms
  max_backoff: 5s
policy_file: policy.yaml
`, svc.kafka(), prefix, svc.chAddr(), db, ingestAddr)
	return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600)
}
