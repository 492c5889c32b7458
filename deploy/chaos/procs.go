package main

import (
	"fmt"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/deploy/harness"
)

// startComponent starts one tollgate component under a supervisor (deploy/harness): whenever it
// exits, by a kill -9 of ours or a crash of its own, it is started again after a second, as
// Kubernetes or systemd would. It logs to logDir/name.log; stop ends it for good and closes the log.
func startComponent(name, bin string, env []string, logDir string, args ...string) (c *harness.Proc, stop func(), err error) {
	f, err := os.Create(fmt.Sprintf("%s/%s.log", logDir, name))
	if err != nil {
		return nil, nil, err
	}
	c, err = harness.Start(name, bin, append(os.Environ(), env...), f, args...)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	c.Supervise(time.Second)
	return c, func() { _ = c.Stop(); f.Close() }, nil
}
