package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The -repair flag: a `tollgate repair` runs through the latency phases (single-event ingest
// latency, then end-to-end latency), so their figures show what a large repair costs live
// traffic (the target: nothing measurable; compare with a run without -repair).
//
// Setting it up: the policy is "fixed" by making every jurisdiction opt_out, so the batched
// phase's events that made no choice about a purpose — blocked live in opt_in jurisdictions —
// are forwarded by a replay under it (hundreds of thousands per destination after a default
// batched phase). The replay runs and its decisions reach ClickHouse before the latency phase;
// then the repair starts, at its defaults (nice 10, one request at a time per destination, a
// quarter of the destination's rate limit), and is stopped (SIGTERM) after the phases if it has
// not finished.

// benchRepair is a repair running beside the latency phases.
type benchRepair struct {
	proc       *proc
	runID      string
	candidates int64
	log        string
	started    time.Time
}

// startRepair replays the bench's traffic under the fixed policy, waits for the run's decisions
// in ClickHouse, and starts the repair.
func startRepair(ctx context.Context, o options, dir string, env []string, ch chClient, db string, from time.Time) (*benchRepair, error) {
	fixedCfg, err := writeFixedPolicy(dir)
	if err != nil {
		return nil, err
	}
	logf("repair: replaying the traffic under a policy with every jurisdiction opt_out")
	replay := exec.CommandContext(ctx, o.bin, "replay", "--config", fixedCfg, "--from", from.UTC().Format(time.RFC3339))
	replay.Env = append(os.Environ(), env...)
	out, err := replay.Output()
	if err != nil {
		return nil, fmt.Errorf("replay for the repair: %w", err)
	}
	runID := strings.TrimSpace(string(out))
	live, err := ch.count(ctx, fmt.Sprintf("SELECT count() FROM `%s`.decisions FINAL WHERE run_id = '' AND event_time >= toDateTime(%d)", db, from.Unix()))
	if err != nil {
		return nil, err
	}
	// FINAL on both sides: a re-inserted batch must not make the live count unreachable.
	runQ := fmt.Sprintf("SELECT count() FROM `%s`.decisions FINAL WHERE run_id = '%s'", db, runID)
	if t, n := ch.waitCount(ctx, runQ, live, time.Second, 15*time.Minute); t.IsZero() {
		return nil, fmt.Errorf("repair: %d of %d replayed decisions reached ClickHouse in 15 min", n, live)
	}
	cands, err := ch.count(ctx, fmt.Sprintf(`SELECT count() FROM (SELECT destination, event_id FROM `+"`%s`"+`.decisions FINAL
		WHERE run_id = '%s' AND outcome = 'forwarded') AS r ANY INNER JOIN (SELECT destination, event_id FROM `+"`%s`"+`.decisions FINAL
		WHERE run_id = '' AND outcome = 'blocked') AS l USING (destination, event_id)`, db, runID, db))
	if err != nil {
		return nil, err
	}
	logf("repair: run %s has %d events to repair; starting the repair", runID, cands)
	p, err := startProc("repair", o.bin, env, dir, "repair", "--config", fixedCfg, "--run", runID)
	if err != nil {
		return nil, err
	}
	return &benchRepair{proc: p, runID: runID, candidates: cands, log: filepath.Join(dir, "repair.log"), started: time.Now()}, nil
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

// finish stops the repair if it still runs and reports it: the run, its candidates, whether
// it finished within the phases, its counts line when it did, its CPU.
func (r *benchRepair) finish() map[string]any {
	r.proc.sample()
	finished := !r.proc.alive()
	r.proc.stop()
	out := map[string]any{"run_id": r.runID, "candidates": r.candidates, "finished_during_phases": finished,
		"seconds": round(time.Since(r.started).Seconds(), 1), "cpu_s": round(r.proc.cpuSeconds(), 1)}
	if b, err := os.ReadFile(r.log); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "repaired ") {
				out["counts"] = l
			}
			if strings.HasPrefix(l, "repair "+r.runID+": ") {
				out["last_progress"] = strings.TrimPrefix(l, "repair "+r.runID+": ")
			}
		}
	}
	return out
}
