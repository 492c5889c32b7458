package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// services is the chaos run's PRIVATE Kafka and ClickHouse, started with
// deploy/local/services-up.sh in their own state folder and on their own ports, so restarting
// them never touches the shared pair other work uses.
type services struct {
	dir                          string
	kafkaPort, chTCP, chHTTP, kc int
}

func (s services) env() []string {
	return []string{
		"TOLLGATE_SERVICES_DIR=" + s.dir,
		"TOLLGATE_SERVICES_KAFKA_PORT=" + strconv.Itoa(s.kafkaPort),
		"TOLLGATE_SERVICES_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(s.kc),
		"TOLLGATE_SERVICES_CLICKHOUSE_TCP_PORT=" + strconv.Itoa(s.chTCP),
		"TOLLGATE_SERVICES_CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(s.chHTTP),
	}
}

func (s services) kafka() string  { return fmt.Sprintf("127.0.0.1:%d", s.kafkaPort) }
func (s services) chAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.chTCP) }
func (s services) chURL() string  { return fmt.Sprintf("http://127.0.0.1:%d", s.chHTTP) }

// up runs services-up.sh for the private pair (starting whichever is not running) and waits
// for waitFor ("kafka" or "clickhouse": a restart of one while the schedule may be keeping the
// other down), or for both when it is "".
func (s services) up(waitFor string) error {
	cmd := exec.Command("deploy/local/services-up.sh")
	cmd.Env = append(os.Environ(), s.env()...)
	if waitFor != "" {
		cmd.Env = append(cmd.Env, "TOLLGATE_SERVICES_WAIT="+waitFor)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("services-up: %v\n%s", err, out)
	}
	return nil
}

// down runs services-down.sh for the private pair.
func (s services) down() {
	cmd := exec.Command("deploy/local/services-down.sh")
	cmd.Env = append(os.Environ(), s.env()...)
	_ = cmd.Run()
}

// kill sends sig to the private service whose pid file is <dir>/<name>/pid, after checking the
// pid's command line names it (a recycled pid is never signalled), and waits until it is gone.
func (s services) kill(name, pattern string, sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join(s.dir, name, "pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), pattern) || !strings.Contains(string(cmdline), s.dir) {
		return fmt.Errorf("pid %d is not the private %s", pid, name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	for i := 0; i < 600; i++ {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st[strings.LastIndexByte(string(st), ')'):]), ") Z") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not exit", name, pid)
}
