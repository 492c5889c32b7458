package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// The -repair-interleave flag: a repair's cost to live traffic, measured inside one run. Two runs
// (-replay, then -repair) compare different machines in effect: fresh services each time, a
// different number of candidates, ClickHouse merges and other tenants at different moments, and
// on two shared cores their ingest p99 differs by tens of percent with no repair at all. Here the
// repair is stopped (SIGSTOP) and resumed (SIGCONT) in turns of a few seconds through the latency
// phases, so every request (and every end-to-end sample) falls in a window with the repair
// running or one with it stopped, on the same state in the same minutes; each phase's latencies
// are reported per state and per window, with the broker's and ClickHouse's CPU per second in
// each state.
//
// Stopping is the harsher test: a resumed repair catches up with what its followers missed in a
// burst, so a running window carries its whole cost.

// interleave toggles a process in turns of every from `from` on: running in even windows.
type interleave struct {
	target *proc
	svc    []*proc // Kafka and ClickHouse: their CPU per state
	from   time.Time
	every  time.Duration
	stopC  chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	series map[string]map[int][]time.Duration // latencies per phase, by the window of their intended time
	svcCPU [2]map[string]float64              // [stopped, running]: CPU seconds of each service
	secs   [2]float64                         // wall seconds in each state
}

func startInterleave(target *proc, svc []*proc, every time.Duration) *interleave {
	iv := &interleave{target: target, svc: svc, from: time.Now(), every: every, stopC: make(chan struct{}),
		series: map[string]map[int][]time.Duration{}, svcCPU: [2]map[string]float64{{}, {}}}
	iv.wg.Add(1)
	go iv.toggle()
	return iv
}

func running(window int) int { return 1 - window%2 }

func (iv *interleave) window(t time.Time) int { return int(t.Sub(iv.from) / iv.every) }

// toggle signals the target at each window's start and books the services' CPU of the window
// that ended to its state.
func (iv *interleave) toggle() {
	defer iv.wg.Done()
	last := iv.cpu()
	lastAt := iv.from
	book := func(w int) {
		now, at := iv.cpu(), time.Now()
		iv.mu.Lock()
		for name, c := range now {
			iv.svcCPU[running(w)][name] += c - last[name]
		}
		iv.secs[running(w)] += at.Sub(lastAt).Seconds()
		iv.mu.Unlock()
		last, lastAt = now, at
	}
	for k := 1; ; k++ {
		select {
		case <-iv.stopC:
			book(k - 1)
			_ = syscall.Kill(iv.target.pid, syscall.SIGCONT)
			return
		case <-time.After(time.Until(iv.from.Add(time.Duration(k) * iv.every))):
		}
		book(k - 1)
		sig := syscall.SIGCONT
		if running(k) == 0 {
			sig = syscall.SIGSTOP
		}
		_ = syscall.Kill(iv.target.pid, sig)
	}
}

func (iv *interleave) cpu() map[string]float64 {
	out := map[string]float64{}
	for _, p := range iv.svc {
		p.sample()
		out[p.name] = p.cpuSeconds()
	}
	return out
}

// add books one latency of a phase to the window of its intended send time. A nil iv books
// nothing.
func (iv *interleave) add(phase string, intended time.Time, lat time.Duration) {
	if iv == nil {
		return
	}
	w := iv.window(intended)
	iv.mu.Lock()
	if iv.series[phase] == nil {
		iv.series[phase] = map[int][]time.Duration{}
	}
	iv.series[phase][w] = append(iv.series[phase][w], lat)
	iv.mu.Unlock()
}

// finish resumes the target for good and reports, per phase and state, the latency quantiles
// and each window's p50 and p99, with how likely differences of the windows' mean p50 and p99
// as large as those seen are by chance (permutationP); and per state the services' CPU per
// second. A window with fewer than half the latencies of the phase's fullest (one the phase cut
// short) counts in the quantiles only.
func (iv *interleave) finish() map[string]any {
	close(iv.stopC)
	iv.wg.Wait()
	iv.mu.Lock()
	defer iv.mu.Unlock()
	out := map[string]any{"window_s": iv.every.Seconds()}
	for phase, windows := range iv.series {
		out[phase] = windowStats(windows)
	}
	for state, name := range []string{"repair_stopped", "repair_running"} {
		cpu := map[string]float64{}
		for svc, c := range iv.svcCPU[state] {
			if iv.secs[state] > 0 {
				cpu[svc] = round(c/iv.secs[state], 3)
			}
		}
		out["service_cpu_s_per_s_"+name] = cpu
		out["seconds_"+name] = round(iv.secs[state], 1)
	}
	return out
}

// windowStats are one phase's figures per state (windows: latencies by window number).
func windowStats(windows map[int][]time.Duration) map[string]any {
	var all [2][]time.Duration
	var p50s, p99s [2][]float64
	fullest, last := 0, 0
	for w, lat := range windows {
		fullest, last = max(fullest, len(lat)), max(last, w)
	}
	for w := 0; w <= last; w++ {
		lat := windows[w]
		all[running(w)] = append(all[running(w)], lat...)
		if len(lat) > 0 && 2*len(lat) >= fullest {
			q := quantiles(lat, 0.5, 0.99)
			p50s[running(w)] = append(p50s[running(w)], q[0])
			p99s[running(w)] = append(p99s[running(w)], q[1])
		}
	}
	out := map[string]any{"window_p50_difference_p": round(permutationP(p50s[1], p50s[0]), 3),
		"window_p99_difference_p": round(permutationP(p99s[1], p99s[0]), 3)}
	for state, name := range []string{"repair_stopped", "repair_running"} {
		q := quantiles(all[state], 0.5, 0.99, 0.999, 1)
		out[name] = map[string]any{"samples": len(all[state]), "p50_ms": q[0], "p99_ms": q[1], "p999_ms": q[2], "max_ms": q[3],
			"window_p50_ms": p50s[state], "window_p99_ms": p99s[state]}
	}
	return out
}

// permutationP is the two-sided p-value of the difference of the means of a and b under
// shuffles of their union (20,000, seeded): the chance that windows labelled at random differ
// as much as the running and stopped ones did. Window p99s are few and not normal; this
// assumes neither.
func permutationP(a, b []float64) float64 {
	_, p := pooledPermutation([][2][]float64{{a, b}})
	return p
}

// pooledPermutation tests several runs' windows at once: the statistic is the mean over runs of
// (mean of a − mean of b), and labels are shuffled within each run only (runs differ in level,
// so windows are compared with windows of their own run). It returns the statistic and its
// two-sided p-value (20,000 seeded shuffles).
func pooledPermutation(runs [][2][]float64) (diff, p float64) {
	var use [][2][]float64
	for _, r := range runs {
		if len(r[0]) > 0 && len(r[1]) > 0 {
			use = append(use, r)
		}
	}
	if len(use) == 0 {
		return 0, 1
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	// Each run's windows, a's first: the statistic of the labels as they are, then of shuffles.
	all := make([][]float64, len(use))
	for i, r := range use {
		all[i] = append(slices.Clone(r[0]), r[1]...)
	}
	stat := func() float64 {
		d := 0.0
		for i, v := range all {
			n := len(use[i][0])
			d += mean(v[:n]) - mean(v[n:])
		}
		return d / float64(len(all))
	}
	diff = stat()
	rng := rand.New(rand.NewPCG(1, 2))
	const shuffles = 20000
	extreme := 0
	for range shuffles {
		for _, v := range all {
			rng.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
		}
		if math.Abs(stat()) >= math.Abs(diff)-1e-9 {
			extreme++
		}
	}
	return diff, float64(extreme+1) / float64(shuffles+1)
}

// poolInterleaved prints, for several -repair-interleave reports, each phase's window p50 and
// p99 tested together (pooledPermutation): `go run ./deploy/bench -pool-interleaved A.json,B.json`.
func poolInterleaved(w io.Writer, paths []string) error {
	type state struct {
		P50 []float64 `json:"window_p50_ms"`
		P99 []float64 `json:"window_p99_ms"`
	}
	type phase struct {
		Running state `json:"repair_running"`
		Stopped state `json:"repair_stopped"`
	}
	byPhase := map[string][]phase{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r struct {
			Interleaved map[string]json.RawMessage `json:"latency_interleaved"`
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Interleaved == nil {
			return fmt.Errorf("%s: no latency_interleaved (a -repair -repair-interleave report): %v", path, err)
		}
		for _, name := range []string{"ingest", "e2e"} {
			var ph phase
			if raw, ok := r.Interleaved[name]; ok && json.Unmarshal(raw, &ph) == nil {
				byPhase[name] = append(byPhase[name], ph)
			}
		}
	}
	fmt.Fprintf(w, "%d runs; running minus stopped, windows compared within their run:\n", len(paths))
	for _, name := range []string{"ingest", "e2e"} {
		for _, q := range []string{"p50", "p99"} {
			var runs [][2][]float64
			for _, ph := range byPhase[name] {
				if q == "p50" {
					runs = append(runs, [2][]float64{ph.Running.P50, ph.Stopped.P50})
				} else {
					runs = append(runs, [2][]float64{ph.Running.P99, ph.Stopped.P99})
				}
			}
			d, p := pooledPermutation(runs)
			fmt.Fprintf(w, "  %-6s window_%s_ms %+9.1f ms  p %.3f\n", name, q, d, p)
		}
	}
	return nil
}
