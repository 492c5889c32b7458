// Command bench measures tollgate on this machine (`make bench`). It starts the pipeline as
// separate processes (ingest, process, sink, audit, plus vendor stand-ins) against the running
// Kafka and ClickHouse, drives load from this process over HTTP, and prints one JSON object:
//
//   - ingest_batched: events/s with 500-event batches on several connections (closed loop);
//   - ingest_latency: p50/p99 of single-event requests sent at a fixed rate (open loop, latency
//     from each request's intended send time, so stalls cannot hide);
//   - e2e_throughput: events/s from the first batched request to the last decision row in
//     ClickHouse for those events;
//   - e2e_latency: p50/p99 from intended send time to the decision row appearing in ClickHouse,
//     at a fixed event rate, for 1 event in each 100-event batch (polled every 100 ms);
//   - components: peak RSS (VmHWM) and CPU seconds (utime+stime) of each process, and CPU
//     seconds per 1,000 events (the vendor stand-ins' too, in no total);
//   - late_choice (with -late-choice or -hold, hold.go): the batched phase's users answer the
//     banner late, with or without the policy's hold;
//   - kafka_records_per_event, clickhouse_rows_per_event: what the run left in its topics (from
//     their offsets, per topic) and tables, per event (records.go).
//
// Kafka and ClickHouse run beside it on the same cores; their CPU is not counted (they may be
// shared with other work). Each run uses a fresh topic prefix and database, removed at the end
// unless -keep.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

type options struct {
	bin, brokers, chNative, chHTTP, policy, profileDir   string
	profilePhase, servicesDir, comparePath               string
	profileFor                                           time.Duration
	kafkaGCLog                                           string
	batchDur, latDur, e2eDur, oneLatency, lateChoice     time.Duration
	repairInterleave                                     time.Duration // interleave.go
	interleaveSeed                                       uint64        // interleave.go: the pairs' coin tosses
	conns, batchSize, partitions                         int
	oneEvents, oneConcurrency                            int
	workerNice, clickhouseNice                           int
	latRate, e2eRate                                     float64
	keep, onlyOneByOne, onlyIngest, replay, repair, hold bool
	choiceFirst                                          bool // -choice-first (hold.go)
	queuedChoices                                        bool // -queued-choices (hold.go)
	repairArgs                                           []string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/tollgate", "tollgate binary")
	flag.StringVar(&o.brokers, "kafka", envOr("TOLLGATE_TEST_KAFKA", "127.0.0.1:9092"), "Kafka brokers")
	flag.StringVar(&o.chNative, "clickhouse", envOr("TOLLGATE_TEST_CLICKHOUSE", "127.0.0.1:9000"), "ClickHouse native address")
	flag.StringVar(&o.chHTTP, "clickhouse-http", "http://127.0.0.1:8123", "ClickHouse HTTP URL (for the bench's own reads)")
	flag.StringVar(&o.policy, "policy", "deploy/demo/policy.yaml", "policy file (stand-in addresses are rewritten)")
	flag.DurationVar(&o.profileFor, "profile-for", 10*time.Second, "how long each CPU profile of -profile-dir runs (a drain's is more telling over a minute)")
	flag.StringVar(&o.profileDir, "profile-dir", "", "if set, save CPU profiles (-profile-for long) and heap profiles of every component (and of a -repair run's repair) here (see -profile-phase)")
	flag.StringVar(&o.profilePhase, "profile-phase", "batched", "phase the profiles cover: batched, drain (after batched, while its backlog drains), latency, e2e or onebyone")
	flag.StringVar(&o.servicesDir, "services-dir", envOr("TOLLGATE_SERVICES_DIR", ".services"), "pid files of Kafka and ClickHouse (make services-up), for their CPU")
	flag.StringVar(&o.comparePath, "compare", "", "a previous run's JSON: print each figure's change to stderr")
	flag.StringVar(&o.kafkaGCLog, "kafka-gc-log", "", "the broker's GC log with safepoint lines, for its pauses during the latency phases (default: <services-dir>/kafka/logs/gc.log)")
	flag.BoolVar(&o.onlyOneByOne, "only-onebyone", false, "run only the one-request-per-event phase (a quick look at delivery alone)")
	flag.BoolVar(&o.onlyIngest, "only-ingest", false, "run only the ingest latency phase, with ingest the only tollgate process (ingestalone.go)")
	flag.IntVar(&o.oneEvents, "onebyone-events", 30000, "events of the one-request-per-event delivery phase (0: skip it)")
	flag.DurationVar(&o.oneLatency, "onebyone-latency", 20*time.Millisecond, "the webhook receiver's answer time in the one-request-per-event phase")
	flag.IntVar(&o.oneConcurrency, "onebyone-concurrency", 0, "delivery.concurrency of the one-request-per-event phase (0: the default)")
	flag.DurationVar(&o.batchDur, "batch-duration", 20*time.Second, "batched ingest phase")
	flag.DurationVar(&o.latDur, "latency-duration", 20*time.Second, "fixed-rate single-event phase")
	flag.DurationVar(&o.e2eDur, "e2e-duration", 30*time.Second, "fixed-rate end-to-end phase")
	flag.IntVar(&o.conns, "conns", 8, "connections of the batched phase")
	flag.IntVar(&o.batchSize, "batch", 500, "events per request in the batched phase")
	flag.IntVar(&o.partitions, "partitions", 6, "partitions of the bench's topics")
	flag.Float64Var(&o.latRate, "latency-rate", 2000, "single-event requests per second in the latency phase")
	flag.Float64Var(&o.e2eRate, "e2e-rate", 20000, "events per second in the end-to-end latency phase (100-event batches)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run's topics and database")
	flag.BoolVar(&o.replay, "replay", false, "before the latency phases, replay the batched phase's traffic under a fixed policy and let the pipeline settle "+
		"(repair.go): the baseline of a -repair run")
	flag.BoolVar(&o.repair, "repair", false, "as -replay, then run a `tollgate repair` of the replay through the latency phases (repair.go); compare with a -replay run")
	flag.DurationVar(&o.repairInterleave, "repair-interleave", 0, "with -repair: stop and resume the repair in turns this long through the latency "+
		"phases and report their latencies per state (interleave.go); 0: the repair runs throughout")
	flag.Uint64Var(&o.interleaveSeed, "repair-interleave-seed", 0, "seed of which window of each pair has the repair running (0: from the clock; the report gives it)")
	repairArgs := flag.String("repair-args", "", "further flags of the -repair run's `tollgate repair`, space-separated (e.g. \"--rate 500 --yield-lag 0\")")
	flag.DurationVar(&o.lateChoice, "late-choice", 0, "batched phase as behind an opt-in banner (hold.go): each user's first events carry no choice and "+
		"the choice follows this long after (0: off); compare -hold with a run of the same traffic without it")
	flag.BoolVar(&o.hold, "hold", false, "hold events before the choice (policy hold: window "+holdWindow+"; CONTRACT §9); sets -late-choice 1s unless given")
	flag.BoolVar(&o.choiceFirst, "choice-first", false, "with -late-choice: the first events carry the choice their answer brings, so they are decided at once "+
		"as a hold would decide them after the choice (the same decisions and deliveries, nothing held): the cost of what the hold forwards, apart from holding it")
	flag.BoolVar(&o.queuedChoices, "queued-choices", false, "with -hold: the processor's processor.queued_choices (an event whose choice is already queued "+
		"behind it decided at once instead of held)")
	flag.IntVar(&o.workerNice, "worker-nice", 10, "CPU niceness of the processor, sink and audit processes (ingest keeps 0), so that "+
		"a draining backlog yields the cores to ingest's requests, as docs/operations.md advises; 0 runs all alike")
	flag.IntVar(&o.clickhouseNice, "clickhouse-nice", 10, "CPU niceness of the running ClickHouse server (found by its pid file under -services-dir) for the "+
		"bench's duration, put back at the end: it is the audit writer's backlog too, and at 0 it takes the cores from ingest; 0 leaves it alone")
	pool := flag.String("pool-interleaved", "", "comma-separated -repair -repair-interleave reports: test their windows together and exit (interleave.go)")
	pairs := flag.String("pool-pairs", "", "space-separated pairs OFF.json,ON.json of -late-choice runs without and with -hold: their end-to-end "+
		"changes tested together against the 10 % target, and exit (pairs.go)")
	flag.Parse()
	if *pairs != "" {
		if err := poolPairs(os.Stdout, strings.Fields(*pairs)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *pool != "" {
		if err := poolInterleaved(os.Stdout, strings.Split(*pool, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if o.hold && o.lateChoice == 0 {
		o.lateChoice = time.Second
	}
	if o.choiceFirst && (o.hold || o.lateChoice == 0) {
		fmt.Fprintln(os.Stderr, "bench: -choice-first needs -late-choice and no -hold")
		os.Exit(2)
	}
	if o.onlyIngest && o.onlyOneByOne {
		fmt.Fprintln(os.Stderr, "bench: -only-ingest and -only-onebyone each run one phase alone: choose one")
		os.Exit(2)
	}
	if o.repairInterleave > 0 && !o.repair {
		fmt.Fprintln(os.Stderr, "bench: -repair-interleave needs -repair")
		os.Exit(2)
	}
	o.repairArgs = strings.Fields(*repairArgs)
	if o.kafkaGCLog == "" {
		o.kafkaGCLog = filepath.Join(o.servicesDir, "kafka", "logs", "gc.log")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(report)
	if o.comparePath != "" {
		if err := compare(os.Stderr, o.comparePath, report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: "+format+"\n", append([]any{time.Now().Format("15:04:05.0")}, args...)...)
}

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// run is the whole bench: setup, four phases, measurements, teardown.
func run(ctx context.Context, o options) (map[string]any, error) {
	// The vendor stand-ins run at the workers' niceness: they play vendors on other hosts, not a
	// part of the pipeline that shares ingest's cores.
	report := map[string]any{"machine": machine(), "worker_nice": o.workerNice, "standins_nice": o.workerNice}
	report["machine"].(map[string]any)["go"] = runtime.Version()
	stamp := time.Now().Format("20060102150405")
	prefix, db := "bench"+stamp+".", "tollgate_bench_"+stamp
	dir, err := os.MkdirTemp("", "tgbench-")
	if err != nil {
		return nil, err
	}
	logf("logs and config in %s", dir)
	stand := map[string]string{"ga4": harness.FreeAddr(), "meta": harness.FreeAddr(), "webhook": harness.FreeAddr()}
	ingestAddr := harness.FreeAddr()
	if err := writeConfig(dir, o, prefix, db, ingestAddr, stand); err != nil {
		return nil, err
	}
	ch := chClient{base: o.chHTTP, http: &http.Client{Timeout: 30 * time.Second}}
	defer cleanup(o, ch, prefix, db)

	env := []string{"GA4_API_SECRET=bench-ga4", "META_TOKEN=bench-meta", "OPS_HOOK_SECRET=whsec_YmVuY2gtb3BzLXNlY3JldA==",
		"TOLLGATE_PROCESSOR_INSTANCE=bench" + stamp}
	if o.onlyIngest {
		lat, err := ingestAlone(ctx, o, dir, "http://"+ingestAddr, env)
		report["ingest_latency_alone"] = lat
		return report, err
	}
	if o.onlyOneByOne {
		one, err := oneByOne(ctx, o, dir, prefix, env)
		if err != nil {
			return nil, fmt.Errorf("one request per event: %w", err)
		}
		report["onebyone_delivery"] = one
		return report, nil
	}
	standins, err := startProc(standinsName, o.bin, env, dir, "standins", "--ga4", stand["ga4"], "--meta", stand["meta"], "--webhook", stand["webhook"])
	if err != nil {
		return nil, err
	}
	defer standins.stop()
	if err := standins.renice(o.workerNice); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.yaml")
	base := "http://" + ingestAddr
	var procs []*proc
	pprofAddrs := map[string]string{}
	for _, c := range []string{"ingest", "process", "sink", "audit"} {
		e := env
		if o.profileDir != "" {
			pprofAddrs[c] = harness.FreeAddr()
			e = append(append([]string{}, env...), "TOLLGATE_DEBUG_PPROF_LISTEN="+pprofAddrs[c])
		}
		p, err := startProc(c, o.bin, e, dir, c, "--config", cfg)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		defer p.stop()
		if c != "ingest" {
			if err := p.renice(o.workerNice); err != nil {
				return nil, err
			}
		}
		if c == "ingest" {
			// Ingest creates the topics first: the processor stops (by design) when it cannot
			// read the consent-state topic at start, which a topic created a moment ago by a
			// sibling process can briefly be.
			if err := harness.WaitReady(ctx, base, 90*time.Second, procs[0].h); err != nil {
				return nil, fmt.Errorf("%w (logs in %s)", err, dir)
			}
		}
	}
	decisions := func(lo, hi string) func(context.Context) (int64, error) {
		pc := &partCounter{ch: ch, db: db, table: "decisions", where: fmt.Sprintf("destination = 'ops' AND event_id >= '%s' AND event_id < '%s'", lo, hi)}
		return pc.count
	}
	var seq atomic.Int64

	// Warm up: connections, consumer groups joined, the audit tables created.
	logf("warming up")
	acc, err := warmUp(ctx, o, base, &seq)
	if err != nil {
		return nil, err
	}
	if t, n := waitCount(ctx, decisions("w", "x"), acc, 250*time.Millisecond, 120*time.Second); t.IsZero() {
		return nil, fmt.Errorf("warm-up: %d of %d decisions reached ClickHouse in 120 s (logs in %s)", n, acc, dir)
	}
	svc := services(o.servicesDir)
	report["clickhouse_nice"] = 0
	for _, p := range svc {
		if p.name != "clickhouse" || o.clickhouseNice == 0 {
			continue
		}
		restore, err := p.reniceFor(o.clickhouseNice)
		defer restore()
		if err != nil {
			logf("%v: ClickHouse keeps its priority", err)
			continue
		}
		report["clickhouse_nice"] = o.clickhouseNice
		logf("ClickHouse at nice %d until the bench ends (-clickhouse-nice)", o.clickhouseNice)
	}
	if len(svc) < 2 {
		logf("Kafka's or ClickHouse's pid file is missing under %s: their CPU is not reported", o.servicesDir)
	}
	watched := append(append([]*proc{standins}, procs...), svc...)
	cpu0 := cpuNow(watched)

	// Phase 1: batched ingest throughput; phase 2 (its tail): end-to-end throughput.
	logf("batched ingest: %d connections, %d events per request, %s", o.conns, o.batchSize, o.batchDur)
	var profWG sync.WaitGroup
	profile := func(phase string) {
		if o.profileDir != "" && o.profilePhase == phase {
			profWG.Add(1)
			go func() { defer profWG.Done(); saveProfiles(ctx, o.profileDir, o.profileFor, pprofAddrs) }()
		}
	}
	profile("batched")
	bp := newPoster(base, "wk_bench", o.conns)
	t0 := time.Now()
	var accepted int64
	var bst *statuses
	if o.lateChoice > 0 {
		var unanswered int64
		accepted, unanswered, bst = closedLoopLate(ctx, bp, newLateTraffic("b", o.batchSize, o.choiceFirst), o.batchSize, o.conns, o.batchDur, o.lateChoice, &seq)
		report["late_choice"] = lateChoiceReport(o, unanswered)
	} else {
		accepted, bst = closedLoop(ctx, bp, newTemplate("b", o.batchSize, false), o.batchSize, o.conns, o.batchDur, &seq)
	}
	tIngest := time.Since(t0)
	profile("drain")
	report["ingest_batched"] = map[string]any{
		"events_per_s": round(float64(accepted)/tIngest.Seconds(), 0), "events": accepted, "batch_size": o.batchSize,
		"connections": o.conns, "duration_s": round(tIngest.Seconds(), 1), "status_codes": bst.json(),
	}
	logf("ingest: %d events in %.1fs; waiting for their decisions in ClickHouse, with %.0f single-event requests/s meanwhile", accepted, tIngest.Seconds(), o.latRate)
	// While the backlog drains: ingest latency with the rest of the pipeline busy on the same cores.
	var drainLat map[string]any
	var drainSent int64
	drainDone := make(chan struct{})
	go func() {
		defer close(drainDone)
		drainLat, drainSent = singleEvents(ctx, o, base, "d", &seq, nil)
	}()
	tDone, n := waitCount(ctx, decisions("b", "c"), accepted, 100*time.Millisecond, 10*time.Minute)
	<-drainDone
	if !tDone.IsZero() {
		// The figure is only what it says while the drain outlasted it.
		drainLat["drain_outlasted_phase"] = tDone.After(t0.Add(tIngest).Add(o.latDur))
	}
	report["ingest_latency_during_drain"] = drainLat
	e2e := map[string]any{"events": accepted, "decision_rows_seen": n}
	if !tDone.IsZero() {
		d := tDone.Sub(t0)
		e2e["events_per_s"] = round(float64(accepted)/d.Seconds(), 0)
		e2e["seconds"] = round(d.Seconds(), 1)
		e2e["drain_after_ingest_s"] = round(tDone.Sub(t0.Add(tIngest)).Seconds(), 1)
	}
	report["e2e_throughput"] = e2e
	logf("end-to-end: %v", e2e)

	var repairing *benchRepair
	if o.replay || o.repair {
		run, err := prepareReplay(ctx, o, dir, env, ch, db, t0.Add(-time.Minute))
		if err != nil {
			return nil, err
		}
		report["replay"] = run.report
		if o.repair {
			renv := env
			if o.profileDir != "" {
				pprofAddrs["repair"] = harness.FreeAddr()
				renv = append(append([]string{}, env...), "TOLLGATE_DEBUG_PPROF_LISTEN="+pprofAddrs["repair"])
			}
			if repairing, err = startRepair(ctx, o, dir, renv, run); err != nil {
				return nil, err
			}
			defer repairing.proc.stop()
		}
	} else {
		// The end-to-end phase ends at the last decision row; the sinks may still be delivering
		// the backlog (0.7 cores in session 20's run), and the latency phase below is the
		// pipeline idle: wait until every group has caught up.
		settled, err := settle(ctx, o, ch, db, filepath.Join(dir, "config.yaml"), false)
		if err != nil {
			return nil, err
		}
		e2e["settle_before_latency_s"] = round(settled.Seconds(), 1)
		logf("pipeline caught up %.1fs after the last decision row", settled.Seconds())
	}
	phasesFrom := time.Now()

	// Phase 3: ingest latency at a fixed request rate, single events.
	logf("ingest latency: %.0f single-event requests/s for %s", o.latRate, o.latDur)
	profile("latency")
	var iv *interleave
	if repairing != nil && o.repairInterleave > 0 {
		seed := o.interleaveSeed
		if seed == 0 {
			seed = uint64(time.Now().UnixNano())
		}
		iv = startInterleave(repairing.proc, svc, o.repairInterleave, seed)
	}
	latCPU, latFrom := cpuNow(watched), time.Now()
	lat, sent := singleEvents(ctx, o, base, "l", &seq, iv)
	lat["cores_used"] = coresUsed(latCPU, cpuNow(watched), time.Since(latFrom))
	report["ingest_latency"] = lat

	// Phase 4: end-to-end latency at a fixed event rate.
	e2eFrom := time.Now()
	profile("e2e")
	report["e2e_latency"] = e2eLatency(ctx, o, ch, db, base, &seq, iv)
	phasesTo := time.Now()
	if iv != nil {
		report["latency_interleaved"] = iv.finish()
	}
	profWG.Wait()
	cpuNow(watched) // the last reading of every process's CPU and peak RSS, while they run
	if repairing != nil {
		report["repair_during_latency"] = repairing.finish(ctx, ch, db, []phase{
			{"ingest_latency", phasesFrom, e2eFrom}, {"e2e_latency", e2eFrom, phasesTo}})
	}

	comps := map[string]any{}
	perK := map[string]any{}
	var cpuTotal float64
	events := float64(accepted)
	if v, ok := report["e2e_latency"].(map[string]any)["events"].(int64); ok {
		events += float64(v)
	}
	events += float64(sent) + float64(drainSent)
	for _, p := range procs {
		c := p.cpuSeconds() - cpu0[p.name]
		cpuTotal += c
		comps[p.name] = map[string]any{"peak_rss_mb": round(float64(p.hwmKB)/1024, 1), "cpu_s": round(c, 1), "alive": p.alive()}
		perK[p.name] = round(c/events*1000, 4)
	}
	perK["total"] = round(cpuTotal/events*1000, 4)
	// Kafka and ClickHouse beside tollgate: the same events, but also whatever else uses them.
	svcTotal := cpuTotal
	for _, p := range svc {
		c := p.cpuSeconds() - cpu0[p.name]
		svcTotal += c
		comps[p.name] = map[string]any{"cpu_s": round(c, 1)}
		perK[p.name] = round(c/events*1000, 4)
		if p.name == "clickhouse" {
			m := float64(p.mergeTicks)/clockTick - cpu0[chMerges]
			comps[p.name].(map[string]any)["merges_cpu_s"] = round(m, 1)
			perK[chMerges] = round(m/events*1000, 4)
		}
	}
	if len(svc) > 0 {
		perK["total_with_services"] = round(svcTotal/events*1000, 4)
	}
	// The vendor stand-ins play vendors on other hosts: their CPU is in no total, but it is
	// taken from the same two cores, and a run that forwards more makes them work more.
	sc := standins.cpuSeconds() - cpu0[standins.name]
	comps[standins.name] = map[string]any{"cpu_s": round(sc, 1), "peak_rss_mb": round(float64(standins.hwmKB)/1024, 1)}
	perK[standins.name] = round(sc/events*1000, 4)
	report["components"] = comps
	report["cpu_s_per_1000_events"] = perK
	report["events_measured"] = int64(events)
	// After the CPU figures: the wait for the last deliveries must not count in them.
	kafkaFig, chFig, err := recordsPerEvent(ctx, strings.Split(o.brokers, ","), ch, prefix, db)
	if err != nil {
		logf("records per event: %v", err)
	}
	if kafkaFig != nil {
		report["kafka_records_per_event"] = kafkaFig
	}
	if chFig != nil {
		report["clickhouse_rows_per_event"] = chFig
	}
	if o.oneEvents > 0 {
		one, err := oneByOne(ctx, o, dir, prefix, env)
		if err != nil {
			return nil, fmt.Errorf("one request per event: %w", err)
		}
		report["onebyone_delivery"] = one
	}
	report["targets"] = targets(report)
	return report, nil
}

// singleEvents sends o.latRate single-event requests/s for o.latDur (event ids prefixed by
// idPrefix) and returns the figures of the phase: latency quantiles from each request's intended
// send time, how late the load generator began them, and the broker's pauses meanwhile; each
// latency also goes to iv, if set.
func singleEvents(ctx context.Context, o options, base, idPrefix string, seq *atomic.Int64, iv *interleave) (map[string]any, int64) {
	p := newPoster(base, "wk_bench", 256)
	single := o.template(idPrefix, 1, false)
	from := time.Now()
	var lags sendLags
	lat, st, sent := openLoop(ctx, o.latRate, o.latDur, 256, func(_ int64, intended time.Time) int {
		lags.add(intended)
		code := p.post(ctx, single.render(seq.Add(1)), false)
		iv.add("ingest", intended, time.Since(intended))
		return code
	})
	q := quantiles(lat, 0.5, 0.99, 0.999, 1)
	out := map[string]any{"rate_rps": o.latRate, "duration_s": o.latDur.Seconds(), "requests": sent,
		"p50_ms": q[0], "p99_ms": q[1], "p999_ms": q[2], "max_ms": q[3], "status_codes": st.json(), "send_lag": lags.json()}
	if pauses := kafkaPauses(o.kafkaGCLog, from, time.Now()); pauses != nil {
		out["kafka_pauses"] = pauses
	}
	return out, sent
}

// e2eLatency sends e2eRate events/s in 100-event batches, one sampled event per batch, and
// polls ClickHouse every 100 ms for the sampled events' decision rows.
func e2eLatency(ctx context.Context, o options, ch chClient, db, base string, seq *atomic.Int64, iv *interleave) map[string]any {
	logf("end-to-end latency: %.0f events/s in 100-event batches for %s", o.e2eRate, o.e2eDur)
	const per = 100
	tpl := o.template("e", per, true)
	p := newPoster(base, "wk_bench", 128)
	var mu sync.Mutex
	intended := map[string]time.Time{}
	seen := map[string]time.Time{}
	var accepted atomic.Int64
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		q := fmt.Sprintf("SELECT event_id FROM `%s`.decisions WHERE destination = 'ops' AND event_id >= 's' AND event_id < 't'", db)
		for pollCtx.Err() == nil {
			out, err := ch.query(pollCtx, q)
			now := time.Now()
			if err == nil {
				mu.Lock()
				for _, id := range strings.Fields(out) {
					if _, ok := seen[id]; !ok {
						seen[id] = now
					}
				}
				mu.Unlock()
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	_, st, sent := openLoop(ctx, o.e2eRate/per, o.e2eDur, 128, func(_ int64, at time.Time) int {
		s := seq.Add(1)
		id := fmt.Sprintf("s%010d", s)
		mu.Lock()
		intended[id] = at
		mu.Unlock()
		code := p.post(ctx, tpl.render(s), false)
		if code == http.StatusAccepted {
			accepted.Add(per)
		} else {
			mu.Lock()
			delete(intended, id)
			mu.Unlock()
		}
		return code
	})
	// Wait for the stragglers, up to a minute.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(seen) >= len(intended)
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopPoll()
	wg.Wait()
	var lat []time.Duration
	missing := 0
	for id, at := range intended {
		if t, ok := seen[id]; ok {
			lat = append(lat, t.Sub(at))
			iv.add("e2e", at, t.Sub(at))
		} else {
			missing++
		}
	}
	q := quantiles(lat, 0.5, 0.99, 1)
	return map[string]any{"rate_eps": o.e2eRate, "duration_s": o.e2eDur.Seconds(), "requests": sent, "events": accepted.Load(),
		"samples": len(lat), "missing_after_60s": missing, "p50_ms": q[0], "p99_ms": q[1], "max_ms": q[2],
		"status_codes": st.json(), "poll_interval_ms": 100}
}

// targets compares the figures with the targets in docs/performance.md.
func targets(r map[string]any) map[string]any {
	get := func(section, key string) float64 {
		m, _ := r[section].(map[string]any)
		v, _ := m[key].(float64)
		return v
	}
	perK, _ := r["cpu_s_per_1000_events"].(map[string]any)
	total, _ := perK["total"].(float64)
	return map[string]any{
		"onebyone_ge_10000_eps":           get("onebyone_delivery", "events_per_s") >= 10000,
		"ingest_p99_lt_10ms_during_drain": get("ingest_latency_during_drain", "p99_ms") > 0 && get("ingest_latency_during_drain", "p99_ms") < 10,
		"tollgate_cpu_le_40us_per_event":  total > 0 && total <= 0.040,
		"ingest_batched_ge_50000_eps":     get("ingest_batched", "events_per_s") >= 50000,
		"ingest_p99_lt_10ms_at_2000rps":   get("ingest_latency", "p99_ms") > 0 && get("ingest_latency", "p99_ms") < 10,
		"e2e_ge_20000_eps":                get("e2e_throughput", "events_per_s") >= 20000,
		"e2e_p99_lt_2s":                   get("e2e_latency", "p99_ms") > 0 && get("e2e_latency", "p99_ms") < 2000,
		"kafka_le_5_records_per_event_all_forwarding": get("kafka_records_per_event", "all_forwarding") > 0 &&
			get("kafka_records_per_event", "all_forwarding") <= 5,
	}
}
