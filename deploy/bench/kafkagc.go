package main

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"time"
)

// safepointLine matches the JVM's -Xlog:safepoint lines (with the utctime decorator, as
// deploy/local/services-up.sh starts the broker):
//
//	[2026-11-29T06:22:52.329+0000][1688.365s][info][safepoint] Safepoint "G1CollectForAllocation", ..., Total: 42554445 ns
//
// Every stop of the broker's threads is one: a G1 or ZGC pause, a deoptimisation, a thread dump.
var safepointLine = regexp.MustCompile(`^\[([0-9T:.+-]+)\].*\[safepoint *\] Safepoint "([^"]+)".* Total: ([0-9]+) ns`)

// kafkaPauses sums the broker's stop-the-world pauses that ended between from and to, from its
// GC log: the time every produce request waits, whatever tollgate does. Nil when there is no log
// (a broker not started by services-up.sh, or before it logged safepoints).
func kafkaPauses(path string, from, to time.Time) map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var n int
	var sum, longest time.Duration
	kinds := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := safepointLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000-0700", m[1])
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		ns, _ := strconv.ParseInt(m[3], 10, 64)
		d := time.Duration(ns)
		n++
		sum += d
		longest = max(longest, d)
		kinds[m[2]]++
	}
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }
	return map[string]any{"log": path, "pauses": n, "paused_ms": ms(sum), "longest_ms": ms(longest),
		"paused_fraction": round(sum.Seconds()/to.Sub(from).Seconds(), 3), "by_cause": kinds}
}
