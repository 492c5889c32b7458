// Package e2e drives the built tollgate binary through its contract (config file, policy file,
// HTTP API) against the real Kafka broker and ClickHouse server, with vendor stand-ins.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	binary    string
	kafkaAddr = os.Getenv("TOLLGATE_TEST_KAFKA")
	chAddr    = os.Getenv("TOLLGATE_TEST_CLICKHOUSE")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "e2e: skipped under -short (drives the binary against real Kafka and ClickHouse)")
		os.Exit(0)
	}
	if kafkaAddr == "" || chAddr == "" {
		fmt.Fprintln(os.Stderr, "e2e: set TOLLGATE_TEST_KAFKA and TOLLGATE_TEST_CLICKHOUSE (make test does) or run make services-up")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "tollgate-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tollgate")
	build := exec.Command("go", "build", "-o", binary, "../cmd/tollgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build tollgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
