// Package kafka holds the franz-go client options every tollgate component shares, and the
// creation of tollgate's topics.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// NewClient returns a client for the configured brokers, logging through zap at warn level
// (franz-go's info logs are per-connection chatter). Extra options come last and win.
func NewClient(cfg *config.Config, log *zap.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := baseOpts(cfg, log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// NewTransactSession is NewClient for a consume-transform-produce loop (exactly once).
func NewTransactSession(cfg *config.Config, log *zap.Logger, opts ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	base, err := baseOpts(cfg, log)
	if err != nil {
		return nil, err
	}
	s, err := kgo.NewGroupTransactSession(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka transact session: %w", err)
	}
	return s, nil
}

// clientSeq numbers the process's Kafka clients for their client ids.
var clientSeq atomic.Int64

func baseOpts(cfg *config.Config, log *zap.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.WithLogger(kzap.New(log.Named("kafka"), kzap.Level(kgo.LogLevelWarn))),
		// A client id of its own per client, so each client's franz-go metrics (kprom) are a
		// series of their own: kprom registers a client's collectors under its id.
		kgo.ClientID(fmt.Sprintf("tollgate-%d", clientSeq.Add(1))),
		kgo.WithHooks(kprom.NewMetrics("tollgate_kafka", kprom.Registerer(prometheus.DefaultRegisterer), kprom.WithClientLabel())),
	}
	sec, err := securityOpts(cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	return append(opts, sec...), nil
}

// Topics returns every topic tollgate needs, with its config: the raw topic, one filtered, one retry and
// one dead-letter topic and one delivery ledger per destination, the audit topics, the
// compacted consent-state changelog and the processor's dedup changelog.
func Topics(cfg *config.Config) map[string]map[string]*string {
	compact, compactDelete, del := "compact", "compact,delete", "delete"
	ledgerRetention := strconv.FormatInt((cfg.Delivery.RetryHorizon + 24*time.Hour).Milliseconds(), 10)
	dedupRetention := strconv.FormatInt((cfg.Dedup.Window + 24*time.Hour).Milliseconds(), 10)
	topics := map[string]map[string]*string{
		cfg.Topic(config.TopicRaw):         nil,
		cfg.Topic(config.TopicDecisions):   nil,
		cfg.Topic(config.TopicDeliveries):  nil,
		cfg.Topic(config.TopicState):       {"cleanup.policy": &compact},
		cfg.Topic(config.TopicRawDLQ):      nil,
		cfg.Topic(config.TopicAuditParked): nil,
		cfg.Topic(config.TopicDuplicates):  nil,
		// Time retention, not compaction: every id of a user shares its key (so it lands on the
		// partition of the user's events), and ids older than the window must go. A day's margin
		// keeps every id at least the window, whatever the segment boundaries.
		cfg.Topic(config.TopicDedupIDs): {"cleanup.policy": &del, "retention.ms": &dedupRetention},
	}
	for _, name := range cfg.Policy.Names {
		topics[cfg.Topic(config.DestTopic(name))] = nil
		topics[cfg.Topic(config.RetryTopic(name))] = nil
		topics[cfg.Topic(config.DLQTopic(name))] = nil
		// The ledger only needs entries as long as an event may still be sent: compacted (one
		// entry per event), and deleted after the retry horizon plus a day.
		topics[cfg.Topic(config.LedgerTopic(name))] = map[string]*string{"cleanup.policy": &compactDelete, "retention.ms": &ledgerRetention}
	}
	return topics
}

// EnsureTopics creates the topics tollgate needs that do not exist yet. Existing topics are left
// as they are (their partition count is the operator's choice).
func EnsureTopics(ctx context.Context, cfg *config.Config, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	var names []string
	for topic, conf := range Topics(cfg) {
		names = append(names, topic)
		resp, err := adm.CreateTopic(ctx, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.ReplicationFactor), conf, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return waitServable(ctx, adm, names, 30*time.Second)
}

// Ping returns nil when a broker answers a metadata request within the context's deadline.
func Ping(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// Header returns the value of a record header, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
