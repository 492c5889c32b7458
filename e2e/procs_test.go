package e2e

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/stretchr/testify/require"
)

// proc is one tollgate component running as its own process, which a test may kill -9 and start
// again. All incarnations write to the same log buffer.
type proc struct {
	p    *pipeline
	name string
	args []string
	env  []string
	logs *syncBuffer

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	kills int
}

// spawn starts `tollgate <component> --config ...` with extra environment variables.
func (p *pipeline) spawn(name string, env []string, component ...string) *proc {
	c := &proc{p: p, name: name, args: append(component, "--config", p.configPath()), env: p.env(env...), logs: &syncBuffer{}}
	c.start()
	p.t.Cleanup(c.stop)
	return c
}

func (c *proc) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.Command(binary, c.args...)
	cmd.Env = c.env
	cmd.Stderr = c.logs
	require.NoError(c.p.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
}

// kill9 kills the process the way a crash or an OOM kill would, and waits until it is gone.
func (c *proc) kill9() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.kills++
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the process with SIGTERM (test cleanup), or SIGKILL if it does not exit in time.
func (c *proc) stop() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		c.p.t.Errorf("%s did not stop within 15 s of SIGTERM", c.name)
	}
}

func (c *proc) killCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kills
}
