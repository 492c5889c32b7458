package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/lag"
)

// The -replay and -repair flags: what a large `tollgate repair` costs live traffic. A run with
// -repair has a repair running through the latency phases (single-event ingest latency, then
// end-to-end latency); compare it with a run with -replay, which prepares the same state and
// starts no repair (the target: no measurable difference).
//
// Both prepare the same way, before the latency phases: the policy is "fixed" by making every
// jurisdiction opt_out, so the batched phase's events that made no choice about a purpose —
// blocked live in opt_in jurisdictions — are forwarded by a replay under it (hundreds of
// thousands per destination after a default batched phase). The replay runs, its decisions reach
// ClickHouse, and the bench waits until the audit writer has no lag and ClickHouse no merge of
// the run's database running (settle), so neither the replay's backlog nor its merges fall into
// the phases. With -repair the repair then starts, at its defaults, and the phases begin once it
// is sending (its candidates loaded, its first events counted); it is stopped (SIGTERM) after
// the phases if it has not finished, and its CPU, events per second during the phases and
// whether it ran throughout them are reported.

// replayRun is the bench traffic replayed under the fixed policy, its decisions in ClickHouse.
type replayRun struct {
	runID, fixedCfg string
	candidates      int64
	report          map[string]any
}

// prepareReplay replays the bench's traffic (events from `from` on) under the fixed policy,
// waits for the run's decisions in ClickHouse and for the pipeline to settle, and counts the
// run's repair candidates.
func prepareReplay(ctx context.Context, o options, dir string, env []string, ch chClient, db string, from time.Time) (*replayRun, error) {
	fixedCfg, err := writeFixedPolicy(dir)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	logf("replay: the traffic under a policy with every jurisdiction opt_out")
	replay := exec.CommandContext(ctx, o.bin, "replay", "--config", fixedCfg, "--from", from.UTC().Format(time.RFC3339))
	replay.Env = append(os.Environ(), env...)
	out, err := replay.Output()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	runID := strings.TrimSpace(string(out))
	live, err := ch.count(ctx, fmt.Sprintf("SELECT count() FROM `%s`.decisions FINAL WHERE run_id = '' AND event_time >= toDateTime(%d)", db, from.Unix()))
	if err != nil {
		return nil, err
	}
	// FINAL on both sides: a re-inserted batch must not make the live count unreachable.
	runQ := fmt.Sprintf("SELECT count() FROM `%s`.decisions FINAL WHERE run_id = '%s'", db, runID)
	if t, n := waitCount(ctx, ch.countOf(runQ), live, time.Second, 15*time.Minute); t.IsZero() {
		return nil, fmt.Errorf("replay: %d of %d replayed decisions reached ClickHouse in 15 min", n, live)
	}
	cands, err := ch.count(ctx, fmt.Sprintf(`SELECT count() FROM (SELECT destination, event_id FROM `+"`%s`"+`.decisions FINAL
		WHERE run_id = '%s' AND outcome = 'forwarded') AS r ANY INNER JOIN (SELECT destination, event_id FROM `+"`%s`"+`.decisions FINAL
		WHERE run_id = '' AND outcome = 'blocked') AS l USING (destination, event_id)`, db, runID, db))
	if err != nil {
		return nil, err
	}
	stored := time.Since(t0)
	settled, err := settle(ctx, o, ch, db, filepath.Join(dir, "config.yaml"), true)
	if err != nil {
		return nil, err
	}
	logf("replay: run %s stored in %.0fs, settled after %.0fs more; %d events to repair", runID, stored.Seconds(), settled.Seconds(), cands)
	return &replayRun{runID: runID, fixedCfg: fixedCfg, candidates: cands, report: map[string]any{
		"run_id": runID, "decisions": live, "candidates": cands,
		"stored_s": round(stored.Seconds(), 1), "settle_s": round(settled.Seconds(), 1)}}, nil
}

// settle waits, up to 10 minutes, until every consumer group of the pipeline configured in
// cfgPath has caught up (lag within a few commit markers per partition) and, with merges,
// ClickHouse runs no merge in db, twice in a row 2 s apart.
func settle(ctx context.Context, o options, ch chClient, db, cfgPath string, merges bool) (time.Duration, error) {
	t0 := time.Now()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(o.brokers, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups := []string{cfg.ProcessorGroup(), cfg.AuditGroup()}
	for _, name := range cfg.Policy.Names {
		groups = append(groups, cfg.SinkGroup(name))
	}
	// Transactional topics keep a commit marker past the last record: a few per partition.
	markers := int64(len(groups) * o.partitions * 4)
	quiet := 0
	for quiet < 2 {
		if time.Since(t0) > 10*time.Minute {
			return 0, fmt.Errorf("settle: the pipeline still busy after 10 min")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		behind, err := lag.Total(ctx, adm, groups...)
		if err != nil {
			return 0, err
		}
		var running int64
		if merges {
			if running, err = ch.count(ctx, fmt.Sprintf("SELECT count() FROM system.merges WHERE database = '%s'", db)); err != nil {
				return 0, err
			}
		}
		if behind <= markers && running == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return time.Since(t0), nil
}

// benchRepair is a repair running beside the latency phases.
type benchRepair struct {
	proc        *proc
	runID       string
	candidates  int64
	log         string
	started     time.Time // the process started
	sending     time.Time // its first events counted
	cpuAtPhases float64   // its CPU seconds when the phases began
}

// startRepair starts the repair of run and returns once it has counted its first events (its
// candidates are loaded from ClickHouse and its walk of the raw topic reached them) and sent for
// repairWarmup more, so the phases measure a repair under way, not its start-up; the time to its
// first events is reported as setup_s.
func startRepair(ctx context.Context, o options, dir string, env []string, run *replayRun) (*benchRepair, error) {
	logf("repair: starting the repair of run %s (%d events)", run.runID, run.candidates)
	args := append([]string{"repair", "--config", run.fixedCfg, "--run", run.runID}, o.repairArgs...)
	p, err := startProc("repair", o.bin, env, dir, args...)
	if err != nil {
		return nil, err
	}
	r := &benchRepair{proc: p, runID: run.runID, candidates: run.candidates, log: filepath.Join(dir, "repair.log"), started: time.Now()}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		if done, _ := r.progress(); done > 0 {
			break
		}
		if !p.alive() {
			return nil, fmt.Errorf("repair exited before sending (log %s)", r.log)
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("repair sent nothing in 15 min (log %s)", r.log)
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	r.sending = time.Now()
	logf("repair: sending after %.0fs of setup; %s more before the phases", r.sending.Sub(r.started).Seconds(), repairWarmup)
	// Its first moments of sending (the doubts of an earlier repair settled, the first chunks
	// while its followers catch up) are a start-up, not the repair under way: with the phases
	// begun at once, they fell in the first window of every interleaved run, always a running one.
	select {
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	case <-time.After(repairWarmup):
	}
	p.sample()
	r.cpuAtPhases = p.cpuSeconds()
	return r, nil
}

// repairWarmup is how long the repair sends before the latency phases begin.
const repairWarmup = 20 * time.Second

// progressLine matches the repair's progress lines ("repair ID: done/total events ...").
var progressLine = regexp.MustCompile(`^repair \S+: (\d+)/(\d+) events`)

// progress reads the repair's last progress line: events handled so far and the whole line.
func (r *benchRepair) progress() (int64, string) {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return 0, ""
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m := progressLine.FindStringSubmatch(lines[i]); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n, strings.TrimPrefix(lines[i], "repair "+r.runID+": ")
		}
	}
	return 0, ""
}

// writeFixedPolicy writes policy-fixed.yaml (every jurisdiction opt_out, its own version) and
// the config naming it, and returns the config's path.
func writeFixedPolicy(dir string) (string, error) {
	pol, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		return "", err
	}
	fixed := fixPolicy(string(pol))
	if err := os.WriteFile(filepath.Join(dir, "policy-fixed.yaml"), []byte(fixed), 0o600); err != nil {
		return "", err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config-fixed.yaml")
	return path, os.WriteFile(path, []byte(strings.Replace(string(cfg), "policy_file: policy.yaml", "policy_file: policy-fixed.yaml", 1)), 0o600)
}

// fixPolicy makes every jurisdiction opt_out under a version of its own.
func fixPolicy(pol string) string {
	return topVersion.ReplaceAllString(strings.ReplaceAll(pol, "{model: opt_in}", "{model: opt_out}"), `version: "bench-fixed"`)
}

var topVersion = regexp.MustCompile(`(?m)^version:.*$`)

// phase is a latency phase's time span.
type phase struct {
	name     string
	from, to time.Time
}

// finish reports the repair at the end of the phases: whether it ran throughout them, its CPU
// seconds during them, and per phase the events it sent and their rate (deliveries rows of its
// run, read once the audit writer has stored them); then stops it if it still runs.
func (r *benchRepair) finish(ctx context.Context, ch chClient, db string, phases []phase) map[string]any {
	r.proc.sample()
	running := r.proc.alive()
	cpuEnd := r.proc.cpuSeconds()
	r.proc.stop()
	if !running {
		// It exited during the phases: /proc no longer has it, its rusage does.
		if c, ok := r.proc.h.ExitCPU(); ok {
			cpuEnd = c.Seconds()
		}
	}
	done, last := r.progress()
	out := map[string]any{"run_id": r.runID, "candidates": r.candidates, "running_throughout_phases": running,
		"setup_s": round(r.sending.Sub(r.started).Seconds(), 1), "seconds": round(time.Since(r.started).Seconds(), 1),
		"cpu_s_during_phases": round(cpuEnd-r.cpuAtPhases, 2), "cpu_s": round(cpuEnd, 2), "handled": done, "last_progress": last}
	if b, err := os.ReadFile(r.log); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "repaired ") {
				out["counts"] = l
			}
			// "pausing while live traffic lags": the repair's log before it also yielded the CPU.
			if strings.Contains(l, "pausing for live traffic") || strings.Contains(l, "pausing while live traffic lags") {
				out["pauses"] = toInt(out["pauses"]) + 1
			}
		}
	}
	for _, p := range phases {
		// deliveries.at has whole seconds: count the phase's whole seconds.
		lo, hi := p.from.Unix()+1, p.to.Unix()
		q := fmt.Sprintf("SELECT uniqExact(event_id) FROM `%s`.deliveries WHERE run_id = '%s' AND status = 'delivered' AND at >= toDateTime(%d) AND at < toDateTime(%d)",
			db, r.runID, lo, hi)
		sent, err := stableCount(ctx, ch, q)
		if err != nil {
			logf("repair: its deliveries: %v", err)
			return out
		}
		out["sent_during_"+p.name] = sent
		if hi > lo {
			out["events_per_s_during_"+p.name] = round(float64(sent)/float64(hi-lo), 0)
		}
	}
	return out
}

func toInt(v any) int { n, _ := v.(int); return n }

// stableCount polls the count q until it has not changed for 5 s (the audit writer has stored
// what it will), at most 2 minutes.
func stableCount(ctx context.Context, ch chClient, q string) (int64, error) {
	var last int64 = -1
	same := time.Now()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		n, err := ch.count(ctx, q)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, same = n, time.Now()
		} else if time.Since(same) >= 5*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return last, nil
}
