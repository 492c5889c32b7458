package repair

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestLowerEveryThread runs in a child process (this test binary again), since it changes the
// whole process: after Lower, every thread, also one the runtime may start after it, is in
// SCHED_IDLE and the idle I/O class.
func TestLowerEveryThread(t *testing.T) {
	if os.Getenv("TOLLGATE_REPAIR_PRIORITY_CHILD") == "1" {
		lowerAndCheck(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLowerEveryThread$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TOLLGATE_REPAIR_PRIORITY_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func lowerAndCheck(t *testing.T) {
	require.NoError(t, Lower(Priority{Idle: true, IdleIO: true}))
	// A goroutine locked to a thread of its own, a new one when the runtime has none spare.
	started := make(chan struct{})
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(started)
		<-release
	}()
	<-started
	defer close(release)
	ents, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	require.Greater(t, len(ents), 1)
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		require.NoError(t, err)
		attr, err := unix.SchedGetAttr(tid, 0)
		require.NoError(t, err)
		require.Equal(t, uint32(unix.SCHED_IDLE), attr.Policy, "thread %d", tid)
		prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		require.Zero(t, errno)
		require.Equal(t, uintptr(ioprioIdle), prio, "thread %d", tid)
	}
}
