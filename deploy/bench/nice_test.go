package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// threadNices reads each thread's niceness (field 19 of /proc/<pid>/task/<tid>/stat).
func threadNices(t *testing.T, pid int) []int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		require.NoError(t, err)
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		n, err := strconv.Atoi(f[16]) // field 19; f[0] is field 3
		require.NoError(t, err)
		out = append(out, n)
	}
	return out
}

func TestReniceSetsEveryThread(t *testing.T) {
	// A Go program has several threads by the time it can be reniced, like the components.
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-test.run", "^TestHelperSleep$")
	cmd.Env = append(os.Environ(), "BENCH_HELPER_SLEEP=1")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{name: "helper", pid: cmd.Process.Pid}
	require.Eventually(t, func() bool { return len(threadNices(t, p.pid)) > 1 }, 10*time.Second, 20*time.Millisecond)

	restore, err := p.reniceFor(7)
	require.NoError(t, err)
	for _, n := range threadNices(t, p.pid) {
		require.Equal(t, 7, n)
	}
	if os.Geteuid() != 0 {
		t.Skip("putting a lower niceness back needs root")
	}
	restore()
	for _, n := range threadNices(t, p.pid) {
		require.Equal(t, 0, n)
	}
}

// TestHelperSleep is the child process of TestReniceSetsEveryThread.
func TestHelperSleep(t *testing.T) {
	if os.Getenv("BENCH_HELPER_SLEEP") == "" {
		t.Skip("helper process")
	}
	time.Sleep(time.Minute)
}
