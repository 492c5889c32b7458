package main

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// component is one tollgate process under a supervisor: whenever it exits (a kill -9 of ours,
// or a crash of its own) it is started again after a second, as Kubernetes or systemd would.
type component struct {
	name string
	bin  string
	args []string
	env  []string
	log  *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	stopping bool
	kills    int
	restarts int
}

func newComponent(name, bin string, env []string, logDir string, args ...string) (*component, error) {
	f, err := os.Create(fmt.Sprintf("%s/%s.log", logDir, name))
	if err != nil {
		return nil, err
	}
	c := &component{name: name, bin: bin, args: args, env: append(os.Environ(), env...), log: f}
	if err := c.start(); err != nil {
		return nil, err
	}
	go c.supervise()
	return c, nil
}

func (c *component) start() error {
	cmd := exec.Command(c.bin, c.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = c.env, c.log, c.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	return nil
}

func (c *component) supervise() {
	for {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		<-done
		time.Sleep(time.Second)
		c.mu.Lock()
		stopping := c.stopping
		if !stopping {
			c.restarts++
		}
		c.mu.Unlock()
		if stopping {
			return
		}
		if err := c.start(); err != nil {
			logf("%v", err)
			return
		}
	}
}

// kill9 kills the process like a crash or an OOM kill; the supervisor restarts it.
func (c *component) kill9() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.kills++
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the process for good: SIGTERM, then SIGKILL after 15 s.
func (c *component) stop() {
	c.mu.Lock()
	c.stopping = true
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	c.log.Close()
}

func (c *component) counts() (kills, crashes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kills, c.restarts - c.kills
}
