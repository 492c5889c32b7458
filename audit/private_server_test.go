package audit

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// privateServer is a ClickHouse server of this test alone (the shared one at
// TOLLGATE_TEST_CLICKHOUSE must never be stopped): the same binary and config template as
// `make services-up` (deploy/local/clickhouse), on free ports, with its data in a temp folder
// that survives stop/start.
type privateServer struct {
	t       testing.TB
	dir     string
	addr    string // native protocol
	cmdline []string
	cmd     *exec.Cmd
	exited  chan struct{}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrivateServer renders deploy/local/clickhouse/config.xml for a temp folder and free ports
// and starts the server; it is stopped when the test ends.
func startPrivateServer(t testing.TB) *privateServer {
	t.Helper()
	bin := []string{"clickhouse-server"}
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		_, err := exec.LookPath("clickhouse")
		require.NoError(t, err, "no clickhouse-server or clickhouse binary on PATH: run make services-up")
		bin = []string{"clickhouse", "server"}
	}
	tmpl, err := os.ReadFile("../deploy/local/clickhouse/config.xml")
	require.NoError(t, err)
	users, err := os.ReadFile("../deploy/local/clickhouse/users.xml")
	require.NoError(t, err)
	dir := t.TempDir()
	tcp, http := freePort(t), freePort(t)
	conf := strings.ReplaceAll(string(tmpl), "@STATE_DIR@", dir)
	for from, to := range map[string]string{
		"<tcp_port>9000</tcp_port>":   "<tcp_port>" + strconv.Itoa(tcp) + "</tcp_port>",
		"<http_port>8123</http_port>": "<http_port>" + strconv.Itoa(http) + "</http_port>",
	} {
		require.Contains(t, conf, from, "deploy/local/clickhouse/config.xml changed: update this test")
		conf = strings.Replace(conf, from, to, 1)
	}
	for _, d := range []string{"etc", "data", "tmp", "user_files", "format_schemas", "logs"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "config.xml"), []byte(conf), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "users.xml"), users, 0o644))
	s := &privateServer{t: t, dir: dir, addr: "127.0.0.1:" + strconv.Itoa(tcp),
		cmdline: append(bin, "--config-file="+filepath.Join(dir, "etc", "config.xml"))}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs the server and waits until it answers queries.
func (s *privateServer) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "logs", "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(s.t, err)
	s.cmd = exec.Command(s.cmdline[0], s.cmdline[1:]...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a signal to the test does not reach it
	require.NoError(s.t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); _ = log.Close(); close(s.exited) }()
	require.Eventually(s.t, func() bool {
		select {
		case <-s.exited:
			logs, _ := os.ReadFile(filepath.Join(s.dir, "logs", "clickhouse-server.err.log"))
			s.t.Fatalf("private clickhouse exited at start: %s", logs)
		default:
		}
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.addr}, DialTimeout: time.Second})
		if err != nil {
			return false
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return conn.Ping(ctx) == nil
	}, 60*time.Second, 100*time.Millisecond, "private clickhouse did not answer")
}

// stop sends SIGTERM and waits for the server to exit (SIGKILL after 30 s).
func (s *privateServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
