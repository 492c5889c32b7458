package main

import (
	"math"
	"math/rand/v2"
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
	if len(a) == 0 || len(b) == 0 {
		return 1
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	observed := math.Abs(mean(a) - mean(b))
	all := append(slices.Clone(a), b...)
	rng := rand.New(rand.NewPCG(1, 2))
	const shuffles = 20000
	extreme := 0
	for range shuffles {
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		if math.Abs(mean(all[:len(a)])-mean(all[len(a):])) >= observed-1e-9 {
			extreme++
		}
	}
	return float64(extreme+1) / float64(shuffles+1)
}
