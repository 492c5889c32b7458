package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcclickhouse "github.com/testcontainers/testcontainers-go/modules/clickhouse"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Two ways to run a service in Docker:
//
//   - a local image (tollgate-local/*, built offline by deploy/images/build.sh): a generic
//     container on the HOST network, listening on 127.0.0.1 ports this process picked. Nothing
//     may reach a bridge or leave loopback, which takes three settings, each closing a trap:
//     Ryuk off (its image cannot be pulled offline; Stop removes the containers instead), a
//     provider whose default network is "host" (with no "bridge" network, testcontainers would
//     otherwise create reaper_default, a new bridge), and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
//     (a /.dockerenv on the host makes testcontainers think it runs in a container and dial the
//     default gateway). NetworkMode host itself goes through HostConfigModifier.
//   - an upstream image (the default): the engine's bridge network with published ports, as on a
//     developer's laptop; ClickHouse through the testcontainers clickhouse module, Kafka
//     (apache/kafka: the kafka module only drives confluent-local images) as a generic
//     container publishing the same port it listens on, so what it advertises is reachable.

// LocalImagePrefix marks the images deploy/images/build.sh builds.
const LocalImagePrefix = "tollgate-local/"

// Label marks every container the harness starts (make test-containers sweeps leftovers by it).
const Label = "dev.tollgate.testenv"

var (
	settingsOnce sync.Once

	mu      sync.Mutex
	started []testcontainers.Container
)

// settings applies the environment testcontainers-go reads, before its first use; a value the
// user set is kept.
func settings() {
	settingsOnce.Do(func() {
		if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
	})
}

// dockerAnswers pings the engine testcontainers-go would use (DOCKER_HOST, its config, the
// usual sockets).
func dockerAnswers(ctx context.Context) error {
	settings()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.Health(ctx)
}

// hostProvider is a provider whose default network is "host", so that creating a container
// never creates or joins a bridge.
func hostProvider() (*testcontainers.DockerProvider, error) {
	settings()
	if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); !ok {
		_ = os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	return testcontainers.NewDockerProvider(testcontainers.WithDefaultBridgeNetwork(string(network.NetworkHost)))
}

// runLocal starts a local image on the host network; the image must already be there (a pull
// would leave this machine: build it with make images).
func runLocal(ctx context.Context, image string, env map[string]string) (testcontainers.Container, error) {
	p, err := hostProvider()
	if err != nil {
		return nil, fmt.Errorf("docker provider: %w", err)
	}
	defer p.Close()
	if _, err := p.Client().ImageInspect(ctx, image); err != nil {
		return nil, fmt.Errorf("image %s is not built here (make images): %w", image, err)
	}
	c, err := p.RunContainer(ctx, testcontainers.ContainerRequest{
		Image:  image,
		Env:    env,
		Labels: map[string]string{Label: "1"},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode(network.NetworkHost)
		},
	})
	track(c)
	return c, err
}

// hasBridge reports whether the engine has its default bridge network: the upstream path needs
// it, and without it testcontainers would create one.
func hasBridge(ctx context.Context) (bool, error) {
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return false, err
	}
	defer p.Close()
	nets, err := p.Client().NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return false, fmt.Errorf("network list: %w", err)
	}
	for _, n := range nets.Items {
		if n.Name == testcontainers.Bridge {
			return true, nil
		}
	}
	return false, nil
}

func needBridge(ctx context.Context, image, envName string) error {
	ok, err := hasBridge(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("this Docker engine has no bridge network, so %s cannot run with published ports: build the local images (make images) and set %s=%s... (make test-containers does)", image, envName, LocalImagePrefix)
	}
	return nil
}

func track(c testcontainers.Container) {
	if c == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	started = append(started, c)
}

func stopContainers(ctx context.Context) {
	mu.Lock()
	defer mu.Unlock()
	for _, c := range started {
		if err := c.Terminate(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: remove container:", err)
		}
	}
	started = nil
}

func imageOr(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// freePorts returns n distinct ports free on 127.0.0.1 right now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// kafkaEnv configures a single KRaft node (broker and controller) through the KAFKA_* variables
// both apache/kafka and tollgate-local/kafka read.
func kafkaEnv(listenHost string, port, controller int) map[string]string {
	p, c := strconv.Itoa(port), strconv.Itoa(controller)
	return map[string]string{
		"KAFKA_NODE_ID":                                          "1",
		"KAFKA_PROCESS_ROLES":                                    "broker,controller",
		"KAFKA_LISTENERS":                                        "PLAINTEXT://" + listenHost + ":" + p + ",CONTROLLER://" + listenHost + ":" + c,
		"KAFKA_ADVERTISED_LISTENERS":                             "PLAINTEXT://127.0.0.1:" + p,
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                         "1@127.0.0.1:" + c,
		"KAFKA_INTER_BROKER_LISTENER_NAME":                       "PLAINTEXT",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
		"KAFKA_NUM_PARTITIONS":                                   "6",
		"KAFKA_HEAP_OPTS":                                        "-Xms256m -Xmx512m",
	}
}

func startKafka(ctx context.Context) (endpoints, error) {
	image := imageOr(EnvKafkaImage, DefaultKafkaImage)
	ports, err := freePorts(2)
	if err != nil {
		return endpoints{}, fmt.Errorf("free ports: %w", err)
	}
	port, controller := ports[0], ports[1]
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var c testcontainers.Container
	if strings.HasPrefix(image, LocalImagePrefix) {
		c, err = runLocal(ctx, image, kafkaEnv("127.0.0.1", port, controller))
	} else {
		if err := needBridge(ctx, image, EnvKafkaImage); err != nil {
			return endpoints{}, err
		}
		// The broker listens on the port it advertises and Docker publishes that same port, so
		// a client outside the bridge reaches what the broker names in its metadata.
		p := strconv.Itoa(port) + "/tcp"
		c, err = testcontainers.Run(ctx, image,
			testcontainers.WithEnv(kafkaEnv("0.0.0.0", port, controller)),
			testcontainers.WithExposedPorts(p),
			testcontainers.WithLabels(map[string]string{Label: "1"}),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.PortBindings = network.PortMap{network.MustParsePort(p): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}}
			}))
		track(c)
	}
	if err != nil {
		return endpoints{}, fmt.Errorf("run %s: %w", image, err)
	}
	if err := waitReady(ctx, c, func(ctx context.Context) error { return kafkaReady(ctx, addr) }); err != nil {
		return endpoints{}, fmt.Errorf("%s on %s: %w", image, addr, err)
	}
	return endpoints{addr: addr}, nil
}

func startClickHouse(ctx context.Context) (endpoints, error) {
	image := imageOr(EnvClickHouseImage, DefaultClickHouseImage)
	if !strings.HasPrefix(image, LocalImagePrefix) {
		if err := needBridge(ctx, image, EnvClickHouseImage); err != nil {
			return endpoints{}, err
		}
		// The default user without a password, as the tests and make services-up use it.
		c, err := tcclickhouse.Run(ctx, image,
			testcontainers.WithEnv(map[string]string{"CLICKHOUSE_SKIP_USER_SETUP": "1", "CLICKHOUSE_USER": "default", "CLICKHOUSE_PASSWORD": ""}),
			testcontainers.WithLabels(map[string]string{Label: "1"}))
		if c != nil {
			track(c)
		}
		if err != nil {
			return endpoints{}, fmt.Errorf("run %s: %w", image, err)
		}
		addr, err := c.ConnectionHost(ctx)
		if err != nil {
			return endpoints{}, err
		}
		httpAddr, err := c.PortEndpoint(ctx, "8123/tcp", "")
		return endpoints{addr: addr, http: httpAddr}, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return endpoints{}, fmt.Errorf("free ports: %w", err)
	}
	tcp, httpPort := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
	c, err := runLocal(ctx, image, map[string]string{"CLICKHOUSE_TCP_PORT": tcp, "CLICKHOUSE_HTTP_PORT": httpPort})
	if err != nil {
		return endpoints{}, fmt.Errorf("run %s: %w", image, err)
	}
	if err := waitReady(ctx, c, func(ctx context.Context) error { return clickHouseReady(ctx, "127.0.0.1:"+httpPort) }); err != nil {
		return endpoints{}, fmt.Errorf("%s: %w", image, err)
	}
	return endpoints{addr: "127.0.0.1:" + tcp, http: "127.0.0.1:" + httpPort}, nil
}

// waitReady polls ready until it succeeds, failing early (with the container's output) when the
// container has exited.
func waitReady(ctx context.Context, c testcontainers.Container, ready func(context.Context) error) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = ready(pctx)
		cancel()
		if last == nil {
			return nil
		}
		if st, err := c.State(ctx); err == nil && !st.Running {
			return fmt.Errorf("container exited (code %d): %s", st.ExitCode, tail(ctx, c))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// tail returns the last lines of a container's output, for an error message.
func tail(ctx context.Context, c testcontainers.Container) string {
	r, err := c.Logs(ctx)
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, " | ")
}

// kafkaReady: the broker answers a metadata request and names itself (the listener opens a
// moment before the broker can serve).
func kafkaReady(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(brokers) == 0 {
		return errors.New("no broker in metadata")
	}
	return nil
}

// clickHouseReady: the HTTP interface answers /ping with "Ok.".
func clickHouseReady(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.TrimSpace(string(b)) != "Ok." {
		return fmt.Errorf("ping answered %q", b)
	}
	return nil
}
