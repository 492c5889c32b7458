package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

// clockTick is the kernel's USER_HZ: /proc/<pid>/stat counts CPU time in these. It is 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo to ask).
const clockTick = 100

// proc is one tollgate process of the pipeline under test (run by deploy/harness), or (h nil) a
// service beside it that the bench only watches (Kafka, ClickHouse).
type proc struct {
	name string
	h    *harness.Proc
	log  *os.File
	pid  int
	// last CPU and peak RSS read while it was alive (read again before it stops).
	cpuTicks int64
	hwmKB    int64
	// mergeTicks, for ClickHouse, is the part of cpuTicks its background merge threads used.
	mergeTicks int64
}

func startProc(name, bin string, env []string, logDir string, args ...string) (*proc, error) {
	f, err := os.Create(fmt.Sprintf("%s/%s.log", logDir, name))
	if err != nil {
		return nil, err
	}
	h, err := harness.Start(name, bin, append(os.Environ(), env...), f, args...)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &proc{name: name, h: h, log: f, pid: h.Pid()}, nil
}

// sample reads the process's CPU time and peak RSS from /proc.
func (p *proc) sample() {
	pid := p.pid
	if t, ok := statTicks(fmt.Sprintf("/proc/%d/stat", pid)); ok {
		p.cpuTicks = t
	}
	if p.name == "clickhouse" {
		p.mergeTicks = threadTicks(pid, mergeThreads)
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				p.hwmKB = max(p.hwmKB, kb)
			}
		}
		f.Close()
	}
}

func (p *proc) cpuSeconds() float64 { return float64(p.cpuTicks) / clockTick }

// statTicks reads the CPU time (utime + stime) of a /proc stat file: a process's or a thread's.
func statTicks(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(rest) <= 12 {
		return 0, false
	}
	u, _ := strconv.ParseInt(rest[11], 10, 64) // utime is field 14, rest[0] is field 3
	s, _ := strconv.ParseInt(rest[12], 10, 64) // stime is field 15
	return u + s, true
}

// mergeThreads are the names ClickHouse gives the threads of its background merge pool:
// BackgrProcPool up to 20.x (Debian's 18.16), MergeMutate since.
var mergeThreads = []string{"BackgrProcPool", "MergeMutate"}

// threadTicks is the CPU time of the process's live threads whose name starts with one of
// prefixes. A pool's threads live as long as the server, so the difference of two readings is
// what they used between them (a thread that ended in between would take its time with it).
func threadTicks(pid int, prefixes []string) int64 {
	dirs, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var sum int64
	for _, d := range dirs {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, d.Name())
		comm, err := os.ReadFile(dir + "comm")
		if err != nil || !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(string(comm), p) }) {
			continue
		}
		if t, ok := statTicks(dir + "stat"); ok {
			sum += t
		}
	}
	return sum
}

// stop ends the process (SIGTERM, then SIGKILL after harness.StopGrace) and closes its log.
func (p *proc) stop() {
	_ = p.h.Stop() // the bench reports what it measured; how a component exits is in its log
	p.log.Close()
}

// alive says whether the process is running; a watched service counts as running.
func (p *proc) alive() bool { return p.h == nil || p.h.Alive() }

// services returns the Kafka broker and ClickHouse server started by make services-up, from the
// pid files in dir (deploy/local/services-up.sh); a service without a live pid file is left out
// (say, one in a container).
func services(dir string) []*proc {
	var out []*proc
	for _, name := range []string{"kafka", "clickhouse"} {
		b, err := os.ReadFile(fmt.Sprintf("%s/%s/pid", dir, name))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			continue
		}
		out = append(out, &proc{name: name, pid: pid})
	}
	return out
}

// machine describes the host for the report.
func machine() map[string]any {
	m := map[string]any{"cores": 0}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "processor") {
				n++
			}
			if v, ok := strings.CutPrefix(line, "model name"); ok && m["cpu_model"] == nil {
				m["cpu_model"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
		}
		m["cores"] = n
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m["ram_gb"] = round(float64(kb)/1024/1024, 1)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["load_avg_at_start"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	return m
}

// cpuNow samples every process and returns each one's CPU seconds so far.
func cpuNow(ps []*proc) map[string]float64 {
	out := make(map[string]float64, len(ps))
	for _, p := range ps {
		p.sample()
		out[p.name] = p.cpuSeconds()
		if p.name == "clickhouse" {
			out[chMerges] = float64(p.mergeTicks) / clockTick
		}
	}
	return out
}

// chMerges names, in cpuNow's readings and the report, the part of ClickHouse's CPU that its
// background merges used: on this schema most of it (docs/performance.md), and none of it
// bounded by the insert that caused it.
const chMerges = "clickhouse_merges"

// standinsName names the vendor stand-ins' process: watched for its CPU, but in no total (they
// play vendors on other hosts).
const standinsName = "standins"

// coresUsed is each process's CPU between two cpuNow readings, in cores (CPU seconds per
// second of d), and their sum as "total": what a phase cost the machine, process by process.
// The ingest latency phase reports it, since its p99 is set by what else runs on the cores.
func coresUsed(before, after map[string]float64, d time.Duration) map[string]any {
	out := make(map[string]any, len(after)+1)
	total := 0.0
	for name, c := range after {
		used := (c - before[name]) / d.Seconds()
		if name != chMerges && name != standinsName { // a part of clickhouse's; not the pipeline's
			total += used
		}
		out[name] = round(used, 3)
	}
	out["total"] = round(total, 3)
	return out
}
