// Package e2e drives the built tollgate binary through its contract (config file, policy file,
// HTTP API) against the real Kafka broker and ClickHouse server, with vendor stand-ins.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// kafkaAddr and chAddr come from internal/testenv: TOLLGATE_TEST_KAFKA/_CLICKHOUSE when set,
// else containers started by testcontainers-go, else the run fails saying how to get them.
var binary, kafkaAddr, chAddr string

func TestMain(m *testing.M) {
	flag.Parse()
	widenParallel()
	if testing.Short() {
		fmt.Fprintln(os.Stderr, "e2e: skipped under -short (drives the binary against real Kafka and ClickHouse)")
		os.Exit(0)
	}
	var err error
	if kafkaAddr, err = testenv.RequireKafka(); err == nil {
		chAddr, err = testenv.RequireClickHouse()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		testenv.Stop()
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "tollgate-e2e")
	if err != nil {
		panic(err)
	}
	if binary, err = tollgateBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		testenv.Stop()
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	testenv.Stop()
	os.Exit(code)
}

// tollgateBinary is the binary the scenarios drive: $TOLLGATE_E2E_BINARY when set (make test
// builds it while the services start, so the scenarios need not wait for a build of their own),
// else one built into dir from this checkout.
func tollgateBinary(dir string) (string, error) {
	if path := os.Getenv("TOLLGATE_E2E_BINARY"); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("TOLLGATE_E2E_BINARY: %w", err)
		}
		return path, nil
	}
	path := filepath.Join(dir, "tollgate")
	build := exec.Command("go", "build", "-o", path, "../cmd/tollgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build tollgate: %w", err)
	}
	return path, nil
}

// scenariosAtOnce is how many scenarios run at once unless -test.parallel says otherwise. Each
// scenario owns its topics, database, stand-ins and ports (newPipelineWith), and spends most of
// its time waiting for its processes, the broker and ClickHouse, so more than GOMAXPROCS (go
// test's default, 2 on the project's machine) of them fit; many more would only stretch each
// one's waits.
const scenariosAtOnce = 4

func widenParallel() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(max(scenariosAtOnce, runtime.GOMAXPROCS(0))))
	}
}
