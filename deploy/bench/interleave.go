package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
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
//
// Windows go in pairs (2j, 2j+1), and which of the two has the repair running is a coin toss per
// pair (seeded; the seed is in the report). Latency drifts through a phase (the pipeline
// settling, ClickHouse merging what the last minutes wrote): with the repair always first in its
// pair, as until session 11, a falling drift counted against it. Each pair's difference (running
// minus stopped) is then tested by flipping its sign at random (signFlip): under "the repair
// changes nothing" either order was as likely, so this is the randomization test of the design
// itself, with no assumption about the latencies' distribution or drift.

// interleave toggles a process in turns of every from `from` on.
type interleave struct {
	target *proc
	svc    []*proc // Kafka and ClickHouse: their CPU per state
	from   time.Time
	every  time.Duration
	seed   uint64 // of the pairs' coin tosses
	stopC  chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	series map[string]map[int][]time.Duration // latencies per phase, by the window of their intended time
	svcCPU [2]map[string]float64              // [stopped, running]: CPU seconds of each service
	secs   [2]float64                         // wall seconds in each state
}

func startInterleave(target *proc, svc []*proc, every time.Duration, seed uint64) *interleave {
	iv := &interleave{target: target, svc: svc, from: time.Now(), every: every, seed: seed, stopC: make(chan struct{}),
		series: map[string]map[int][]time.Duration{}, svcCPU: [2]map[string]float64{{}, {}}}
	iv.signal(0)
	iv.wg.Add(1)
	go iv.toggle()
	return iv
}

// runningFirst is the coin toss of pair j: whether the repair runs in its first window.
func runningFirst(seed uint64, j int) bool {
	return rand.New(rand.NewPCG(seed, uint64(j))).IntN(2) == 1
}

// running is 1 in a window with the repair running, 0 in one with it stopped.
func (iv *interleave) running(window int) int {
	if runningFirst(iv.seed, window/2) == (window%2 == 0) {
		return 1
	}
	return 0
}

// signal puts the target in the state of window w.
func (iv *interleave) signal(w int) {
	sig := syscall.SIGCONT
	if iv.running(w) == 0 {
		sig = syscall.SIGSTOP
	}
	_ = syscall.Kill(iv.target.pid, sig)
}

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
			iv.svcCPU[iv.running(w)][name] += c - last[name]
		}
		iv.secs[iv.running(w)] += at.Sub(lastAt).Seconds()
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
		iv.signal(k)
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
// and each whole pair's window p50 and p99 (index-aligned: the running and stopped windows of a
// pair have the same index), with how likely mean pair differences as large as those seen are
// by chance (signFlip); per state the services' CPU per second; and each window's start, state
// and quantiles (to set beside system samples). A window with fewer than half the latencies of
// the phase's fullest (one the phase cut short) counts in the quantiles only.
func (iv *interleave) finish() map[string]any {
	close(iv.stopC)
	iv.wg.Wait()
	iv.mu.Lock()
	defer iv.mu.Unlock()
	out := map[string]any{"window_s": iv.every.Seconds(), "seed": iv.seed, "from_unix_s": round(float64(iv.from.UnixMilli())/1000, 1)}
	for phase, windows := range iv.series {
		out[phase] = iv.windowStats(windows)
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
func (iv *interleave) windowStats(windows map[int][]time.Duration) map[string]any {
	var all [2][]time.Duration
	var p50s, p99s [2][]float64
	var timeline [][]float64 // window, running, samples, p50, p99
	fullest, last := 0, 0
	for w, lat := range windows {
		fullest, last = max(fullest, len(lat)), max(last, w)
	}
	whole := func(w int) bool { return len(windows[w]) > 0 && 2*len(windows[w]) >= fullest }
	qs := map[int][]float64{} // each window's p50 and p99
	for w := 0; w <= last; w++ {
		lat := windows[w]
		all[iv.running(w)] = append(all[iv.running(w)], lat...)
		if len(lat) > 0 {
			qs[w] = quantiles(lat, 0.5, 0.99)
			timeline = append(timeline, []float64{float64(w), float64(iv.running(w)), float64(len(lat)), qs[w][0], qs[w][1]})
		}
		if w%2 == 1 && whole(w-1) && whole(w) {
			for _, v := range []int{w - 1, w} {
				p50s[iv.running(v)] = append(p50s[iv.running(v)], qs[v][0])
				p99s[iv.running(v)] = append(p99s[iv.running(v)], qs[v][1])
			}
		}
	}
	out := map[string]any{"pairs": len(p50s[0]), "windows": timeline}
	for q, s := range map[string][2][]float64{"p50": p50s, "p99": p99s} {
		d := pairDiffs([][2][]float64{{s[1], s[0]}})
		out["pair_"+q+"_difference_ms"] = round(mean(d), 2)
		out["pair_"+q+"_difference_p"] = round(signFlip(d, 0), 3)
		if lo, hi := signFlipCI(d); !math.IsInf(lo, 0) {
			out["pair_"+q+"_interval_ms"] = []float64{round(lo, 2), round(hi, 2)}
		}
	}
	for state, name := range []string{"repair_stopped", "repair_running"} {
		q := quantiles(all[state], 0.5, 0.99, 0.999, 1)
		out[name] = map[string]any{"samples": len(all[state]), "p50_ms": q[0], "p99_ms": q[1], "p999_ms": q[2], "max_ms": q[3],
			"window_p50_ms": p50s[state], "window_p99_ms": p99s[state]}
	}
	return out
}

// pairDiffs are the pairs' differences of runs (each run's running and stopped windows,
// index-aligned by pair): running minus stopped. Tested by random sign flips (signFlip): pairs
// keep drift out (each is compared within its own 20 s), and runs of different levels pool
// without weighting one by its level.
func pairDiffs(runs [][2][]float64) []float64 {
	var d []float64
	for _, r := range runs {
		for i := range min(len(r[0]), len(r[1])) {
			d = append(d, r[0][i]-r[1][i])
		}
	}
	return d
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// signFlip is the two-sided p-value of "the pairs' differences d are shift plus noise symmetric
// about zero".
func signFlip(d []float64, shift float64) float64 {
	if len(d) == 0 {
		return 1
	}
	sum := 0.0
	for _, x := range d {
		sum += x - shift
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const draws = 20000
	extreme := 0
	for range draws {
		s := 0.0
		for _, x := range d {
			if rng.IntN(2) == 1 {
				s -= x - shift
			} else {
				s += x - shift
			}
		}
		if math.Abs(s) >= math.Abs(sum)-1e-9 {
			extreme++
		}
	}
	return float64(extreme+1) / float64(draws+1)
}

// signFlipCI is the 95 % interval of the mean shift the pairs' differences are consistent with:
// the shifts the sign-flip test does not reject at 0.05 (found by bisection on each side). It is
// what "not measurable" can claim: a difference larger than its ends would have been seen.
func signFlipCI(d []float64) (lo, hi float64) {
	if len(d) < 6 { // 2/2^5: fewer pairs cannot reject anything at 0.05
		return math.Inf(-1), math.Inf(1)
	}
	m, spread := mean(d), 0.0
	for _, x := range d {
		spread = max(spread, math.Abs(x-m))
	}
	edge := func(outward float64) float64 {
		in, out := m, m+outward*(spread+1)
		for range 40 {
			mid := (in + out) / 2
			if signFlip(d, mid) >= 0.05 {
				in = mid
			} else {
				out = mid
			}
		}
		return in
	}
	return edge(-1), edge(1)
}

// poolInterleaved prints, for several -repair-interleave reports, each phase's pairs of window
// p50 and p99 tested together (signFlip). Reports from before the coin tosses (the repair ran
// first in every pair) pair their windows the same way, index by index: `go run ./deploy/bench -pool-interleaved A.json,B.json`.
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
	fmt.Fprintf(w, "%d runs; running minus stopped, mean of the pairs of windows:\n", len(paths))
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
			d := pairDiffs(runs)
			lo, hi := signFlipCI(d)
			fmt.Fprintf(w, "  %-6s window_%s_ms %+9.1f ms  p %.3f  95%% interval %+.1f to %+.1f ms (%d pairs)\n",
				name, q, mean(d), signFlip(d, 0), lo, hi, len(d))
		}
	}
	return nil
}
