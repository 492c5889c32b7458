package e2e

import (
	"errors"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

// proc is one tollgate component running as its own process (deploy/harness), which a test may
// kill -9 and start again. All incarnations write to the same log buffer.
type proc struct {
	*harness.Proc
	p    *pipeline
	logs *syncBuffer
}

// spawn starts `tollgate <component> --config ...` with extra environment variables.
func (p *pipeline) spawn(name string, env []string, component ...string) *proc {
	logs := &syncBuffer{}
	h, err := harness.Start(name, binary, p.env(env...), logs, append(component, "--config", p.configPath())...)
	require.NoError(p.t, err)
	c := &proc{Proc: h, p: p, logs: logs}
	p.t.Cleanup(c.stop)
	return c
}

// start starts the component again after Kill9.
func (c *proc) start() { require.NoError(c.p.t, c.Start()) }

// stop ends the process with SIGTERM (test cleanup), or SIGKILL if it does not exit in time.
func (c *proc) stop() {
	if err := c.Stop(); errors.Is(err, harness.ErrKilled) {
		c.p.t.Error(err)
	}
}

func (c *proc) killCount() int {
	kills, _ := c.Counts()
	return kills
}
