// Package lag exports the lag of tollgate's Kafka consumer groups as Prometheus metrics, read
// with kadm's Lag at scrape time, so dashboards and autoscalers (a Kubernetes HPA through the
// Prometheus adapter) see how far each processor, sink and audit writer is behind.
//
// Every tollgate process reports every group of its config: a scrape of any one of them gives
// the whole picture, and several replicas give the same numbers (aggregate with max, not sum).
package lag

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultTimeout bounds one scrape's Kafka requests, below Prometheus's default 10 s timeout.
const DefaultTimeout = 5 * time.Second

var (
	lagDesc = prometheus.NewDesc("tollgate_consumer_group_lag",
		"Records in the topic that the consumer group has not committed yet, summed over partitions. "+
			"Transactional topics (dest.*) may show one commit marker per partition.",
		[]string{"group", "topic"}, nil)
	upDesc = prometheus.NewDesc("tollgate_consumer_group_lag_up",
		"1 if the group's lag was read from Kafka at this scrape, 0 if not (see the error log of the broker).",
		[]string{"group"}, nil)
)

// Collector is a prometheus.Collector of the lag of a fixed set of consumer groups.
type Collector struct {
	adm     *kadm.Client
	groups  []string
	timeout time.Duration
}

// New returns a Collector that reads the groups' lag through cl (which it does not close).
func New(cl *kgo.Client, groups ...string) *Collector {
	return &Collector{adm: kadm.NewClient(cl), groups: groups, timeout: DefaultTimeout}
}

// Describe sends the metrics' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- upDesc
}

// Collect reads the lag from Kafka. A group that does not exist yet has no lag series, only
// tollgate_consumer_group_lag_up 1; a group Kafka could not describe has up 0.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// A copy: kadm's Lag reuses the slice it is given as scratch space.
	lags, err := c.adm.Lag(ctx, slices.Clone(c.groups)...)
	for _, g := range c.groups {
		l, ok := lags[g]
		if ok && errors.Is(l.DescribeErr, kerr.GroupIDNotFound) {
			// Not started yet (or its offsets expired): nothing is behind.
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1, g)
			continue
		}
		if err != nil || !ok || l.Error() != nil {
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0, g)
			continue
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1, g)
		for _, tl := range l.Lag.TotalByTopic().Sorted() {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(tl.Lag), g, tl.Topic)
		}
	}
}

// Serve answers GET /metrics with g on addr until ctx ends: for components that have no HTTP
// server of their own (process, sink, audit). It returns nil after ctx ends.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Total reads the groups' lag once and returns the records they have not committed yet, summed
// over groups, topics and partitions. A group that does not exist yet lags 0; one Kafka could
// not describe is an error. `tollgate repair` waits while live traffic's groups lag, and the
// bench waits for them to drain before it measures.
func Total(ctx context.Context, adm *kadm.Client, groups ...string) (int64, error) {
	// A copy: kadm's Lag reuses the slice it is given as scratch space.
	lags, err := adm.Lag(ctx, slices.Clone(groups)...)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, g := range groups {
		l, ok := lags[g]
		if ok && errors.Is(l.DescribeErr, kerr.GroupIDNotFound) {
			continue
		}
		if !ok {
			return 0, fmt.Errorf("lag of group %s: not described", g)
		}
		if err := l.Error(); err != nil {
			return 0, fmt.Errorf("lag of group %s: %w", g, err)
		}
		total += l.Lag.Total()
	}
	return total, nil
}
