package main

import (
	"sync"
	"syscall"
	"time"
)

// The -repair-interleave flag: a repair's cost to live ingest, measured inside one run. Two runs
// (-replay, then -repair) compare different machines in effect: fresh services each time, a
// different number of candidates, ClickHouse merges and other tenants at different moments, and
// on two shared cores their ingest p99 differs by tens of percent with no repair at all. Here the
// repair is stopped (SIGSTOP) and resumed (SIGCONT) in turns of a few seconds through the ingest
// latency phase, so every request falls in a window with the repair running or one with it
// stopped, on the same state in the same minute; the phase's latencies are reported per state
// and per window, with the broker's and ClickHouse's CPU per second in each state.
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

	mu      sync.Mutex
	windows map[int][]time.Duration // ingest latencies by the window of their intended time
	svcCPU  [2]map[string]float64   // [stopped, running]: CPU seconds of each service
	secs    [2]float64              // wall seconds in each state
}

func startInterleave(target *proc, svc []*proc, every time.Duration) *interleave {
	iv := &interleave{target: target, svc: svc, from: time.Now(), every: every, stopC: make(chan struct{}),
		windows: map[int][]time.Duration{}, svcCPU: [2]map[string]float64{{}, {}}}
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

// add books one request's latency to the window of its intended send time.
func (iv *interleave) add(intended time.Time, lat time.Duration) {
	w := iv.window(intended)
	iv.mu.Lock()
	iv.windows[w] = append(iv.windows[w], lat)
	iv.mu.Unlock()
}

// finish resumes the target for good and reports: per state the latency quantiles, each
// window's p99, and the services' CPU per second.
func (iv *interleave) finish() map[string]any {
	close(iv.stopC)
	iv.wg.Wait()
	iv.mu.Lock()
	defer iv.mu.Unlock()
	var all [2][]time.Duration
	var p99s [2][]float64
	for w := 0; w <= iv.window(time.Now()); w++ {
		lat := iv.windows[w]
		if len(lat) == 0 {
			continue
		}
		all[running(w)] = append(all[running(w)], lat...)
		p99s[running(w)] = append(p99s[running(w)], quantiles(lat, 0.99)[0])
	}
	out := map[string]any{"window_s": iv.every.Seconds()}
	for state, name := range []string{"repair_stopped", "repair_running"} {
		q := quantiles(all[state], 0.5, 0.99, 0.999, 1)
		cpu := map[string]float64{}
		for svc, c := range iv.svcCPU[state] {
			if iv.secs[state] > 0 {
				cpu[svc] = round(c/iv.secs[state], 3)
			}
		}
		out[name] = map[string]any{"requests": len(all[state]), "p50_ms": q[0], "p99_ms": q[1], "p999_ms": q[2], "max_ms": q[3],
			"window_p99_ms": p99s[state], "service_cpu_s_per_s": cpu, "seconds": round(iv.secs[state], 1)}
	}
	return out
}
