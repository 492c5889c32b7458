// Package harness runs tollgate components as processes for the programs and tests that drive
// the built binary: deploy/bench, deploy/chaos and e2e. A Proc is one component: started with
// its environment and a log, killed with SIGKILL like a crash, started again, supervised (started
// again whenever it exits, as Kubernetes or systemd would) and stopped with SIGTERM, then SIGKILL
// after a grace period. WaitReady waits for ingest's /readyz while the processes are alive, and
// DeleteTopics removes a run's topics from the broker.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StopGrace is how long Stop waits after SIGTERM before SIGKILL: a component exits within 10 s
// of SIGTERM (README, "Commands"), so 15 s leaves room for a loaded machine.
const StopGrace = 15 * time.Second

// ErrKilled is what Stop returns when the process outlived StopGrace and was killed.
var ErrKilled = errors.New("did not stop within the grace period of SIGTERM: killed")

// Proc is one component process. Every incarnation (after Kill9 and Start, or under Supervise)
// runs the same command with the same environment and writes to the same log.
type Proc struct {
	Name string
	bin  string
	args []string
	env  []string
	log  io.Writer

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current incarnation has exited
	exit     error         // the current incarnation's exit status, once done
	stopping bool
	killed   bool // the current incarnation was ended by Kill9
	kills    int
	crashes  int
}

// Start starts `bin args...` with env (nil: this process's environment) and stdout and stderr
// going to log.
func Start(name, bin string, env []string, log io.Writer, args ...string) (*Proc, error) {
	p := &Proc{Name: name, bin: bin, args: args, env: env, log: log}
	return p, p.Start()
}

// Start starts a new incarnation; the previous one must have exited (Kill9 waits for that).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked()
}

// startLocked starts an incarnation with p.mu held, so Stop either sees it or keeps it from
// starting (the supervisor checks stopping under the same lock).
func (p *Proc) startLocked() error {
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, p.log, p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exit, p.killed = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.exit = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Done is closed when the current incarnation exits.
func (p *Proc) Done() <-chan struct{} {
	_, done := p.current()
	return done
}

// Pid is the current incarnation's process id.
func (p *Proc) Pid() int {
	cmd, _ := p.current()
	return cmd.Process.Pid
}

// Alive says whether the current incarnation is still running.
func (p *Proc) Alive() bool {
	_, done := p.current()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill9 kills the current incarnation the way a crash or an OOM kill would, and waits until it
// is gone.
func (p *Proc) Kill9() {
	cmd, done := p.current()
	p.mu.Lock()
	p.kills++
	p.killed = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Supervise starts the process again, delay after each exit, until Stop; exits Kill9 did not
// cause count as crashes (Counts).
func (p *Proc) Supervise(delay time.Duration) {
	go func() {
		for {
			_, done := p.current()
			<-done
			time.Sleep(delay)
			p.mu.Lock()
			if p.stopping {
				p.mu.Unlock()
				return
			}
			if !p.killed {
				p.crashes++
			}
			err := p.startLocked()
			p.mu.Unlock()
			if err != nil {
				fmt.Fprintf(os.Stderr, "harness: %v\n", err)
				return
			}
		}
	}()
}

// Stop ends the process for good: SIGTERM, then SIGKILL after StopGrace. It returns the exit
// status of the last incarnation (nil for a clean exit; also when that one had exited before),
// or ErrKilled when it had to kill it.
func (p *Proc) Stop() error {
	p.mu.Lock()
	p.stopping = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return p.exitStatus()
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return p.exitStatus()
	case <-time.After(StopGrace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s %w", p.Name, ErrKilled)
	}
}

// ExitCPU is the CPU time (user + system) of the current incarnation once it has exited, from
// its rusage (/proc no longer has it then); false while it runs.
func (p *Proc) ExitCPU() (time.Duration, bool) {
	cmd, done := p.current()
	select {
	case <-done:
	default:
		return 0, false
	}
	if cmd.ProcessState == nil {
		return 0, false
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), true
}

func (p *Proc) exitStatus() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Counts returns how many times Kill9 killed the process and how many times it exited on its own
// and the supervisor started it again.
func (p *Proc) Counts() (kills, crashes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills, p.crashes
}

// WaitReady polls base+"/readyz" until it answers 200, failing early when one of procs exits,
// when ctx ends or after timeout.
func WaitReady(ctx context.Context, base string, timeout time.Duration, procs ...*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range procs {
			if !p.Alive() {
				return fmt.Errorf("%s exited during start", p.Name)
			}
		}
		if ready(ctx, base) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ingest at %s not ready after %s: %w", base, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// FreeAddr returns a loopback address whose port nothing listens on, for a component to bind.
// The port comes from below the kernel's ephemeral range (32768–60999 on Linux) and away from
// the services' fixed ports: a port the kernel hands out can be taken by any outgoing
// connection (a parallel test's Kafka client) before the component binds it, which failed an
// e2e test with "address already in use". A port is handed out once per process.
func FreeAddr() string {
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 1000 {
		port := 23000 + rand.IntN(5000)
		if freeGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		freeGiven[port] = true
		return ln.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // that range is full: the kernel's choice
	if err != nil {
		panic(fmt.Sprintf("harness: listen on loopback: %v", err))
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// DeleteTopics deletes every topic whose name starts with prefix: a run's deployment (its own
// topic prefix) leaves nothing behind on a shared broker. Partitions left over from run after
// run once took the shared test broker past its open-file limit, and it shut down.
func DeleteTopics(ctx context.Context, brokers []string, prefix string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var mine []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, prefix) {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	resp, err := adm.DeleteTopics(ctx, mine...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	return nil
}
