package lag

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestLagOfGroups runs against the real broker of internal/testenv (TOLLGATE_TEST_KAFKA, which
// make test sets, or a container):
// a group that committed 4 of a partition's 10 records lags 6; a group that never committed
// reports no lag series but up 1.
func TestLagOfGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: -short runs unit tests only")
	}
	brokers := testenv.Kafka(t) // TOLLGATE_TEST_KAFKA, or a container
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.UnknownTopicRetries(-1)) // until ctx ends: a busy broker serves a new topic a moment after creating it
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	run := fmt.Sprintf("lagtest%d", time.Now().UnixNano())
	topic, group, idle := run+".t", run+".g", run+".idle"
	_, err = adm.CreateTopic(ctx, 2, 1, nil, topic)
	require.NoError(t, err)
	defer adm.DeleteTopics(context.Background(), topic) //nolint:errcheck // best effort

	for i := range 10 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte{byte(i)}}).FirstErr())
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 0, LeaderEpoch: -1})
	_, err = adm.CommitOffsets(ctx, group, offs)
	require.NoError(t, err)
	defer adm.DeleteGroups(context.Background(), group) //nolint:errcheck // best effort

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(cl, group, idle))
	want := fmt.Sprintf(`
# HELP tollgate_consumer_group_lag Records in the topic that the consumer group has not committed yet, summed over partitions. Transactional topics (dest.*) may show one commit marker per partition.
# TYPE tollgate_consumer_group_lag gauge
tollgate_consumer_group_lag{group=%[1]q,topic=%[2]q} 6
# HELP tollgate_consumer_group_lag_up 1 if the group's lag was read from Kafka at this scrape, 0 if not (see the error log of the broker).
# TYPE tollgate_consumer_group_lag_up gauge
tollgate_consumer_group_lag_up{group=%[1]q} 1
tollgate_consumer_group_lag_up{group=%[3]q} 1
`, group, topic, idle)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))

	total, err := Total(ctx, adm, group, idle)
	require.NoError(t, err)
	require.Equal(t, int64(6), total, "the idle group adds nothing")
}

// TestLagWithoutKafka: an unreachable broker gives up 0 within the timeout, not a hung scrape.
func TestLagWithoutKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	defer cl.Close()
	c := New(cl, "g")
	c.timeout = 500 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tollgate_consumer_group_lag_up 1 if the group's lag was read from Kafka at this scrape, 0 if not (see the error log of the broker).
# TYPE tollgate_consumer_group_lag_up gauge
tollgate_consumer_group_lag_up{group="g"} 0
`)))
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_test_gauge", Help: "test"})
	g.Set(7)
	reg.MustRegister(g)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, reg) }()
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, body, "tollgate_test_gauge 7")
	cancel()
	require.NoError(t, <-done)
}
