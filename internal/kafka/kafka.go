// Package kafka holds the franz-go client options every tollgate component shares, and the
// creation of tollgate's topics.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
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
		kgo.ProducerBatchCompression(codec(cfg.Kafka.Compression)),
	}
	sec, err := securityOpts(cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	return append(opts, sec...), nil
}

// codec is kafka.compression's franz-go codec (config validation admits only these names).
func codec(name string) kgo.CompressionCodec {
	switch name {
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// Topics returns every topic tollgate needs, with its config: the raw topic, one filtered, one retry and
// one dead-letter topic and one delivery ledger per destination, the audit topics, the
// compacted consent-state and held-events changelogs and the processor's dedup changelog.
func Topics(cfg *config.Config) map[string]map[string]*string {
	compact, compactDelete, del := "compact", "compact,delete", "delete"
	ledgerRetention := strconv.FormatInt((cfg.Delivery.RetryHorizon + 24*time.Hour).Milliseconds(), 10)
	dedupRetention := strconv.FormatInt((cfg.Dedup.Window + 24*time.Hour).Milliseconds(), 10)
	topics := map[string]map[string]*string{
		cfg.Topic(config.TopicRaw):         nil,
		cfg.Topic(config.TopicDecisions):   nil,
		cfg.Topic(config.TopicDeliveries):  nil,
		cfg.Topic(config.TopicState):       {"cleanup.policy": &compact},
		cfg.Topic(config.TopicHeld):        {"cleanup.policy": &compact},
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

// EnsureTopics creates the topics tollgate needs that do not exist yet, with
// kafka.replication_factor replicas and min.insync.replicas = kafka.min_insync_replicas (with the
// producers' acks=all, a write is acknowledged only once that many replicas hold it). Existing
// topics are left as they are (their partition count is the operator's choice; WeakTopics says
// which of them are less durable than configured).
func EnsureTopics(ctx context.Context, cfg *config.Config, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	var names []string
	minISR := strconv.Itoa(cfg.Kafka.MinInsyncReplicas)
	for topic, conf := range Topics(cfg) {
		names = append(names, topic)
		if cfg.Kafka.MinInsyncReplicas > 0 { // 0: a Config built by hand, not by Parse: broker default
			conf = maps.Clone(conf)
			if conf == nil {
				conf = map[string]*string{}
			}
			conf["min.insync.replicas"] = &minISR
		}
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

// WeakTopic is a topic less durable than configured, and how.
type WeakTopic struct {
	Topic   string
	Problem string
}

// WeakTopics checks the topics tollgate needs that exist and returns one entry for each with
// fewer replicas (in any partition) than kafka.replication_factor or a lower
// min.insync.replicas than kafka.min_insync_replicas. Topics created by EnsureTopics pass; an
// older topic, or one created by hand, is left alone (changing replication is a reassignment,
// the operator's call) but should be known.
func WeakTopics(ctx context.Context, cfg *config.Config, cl *kgo.Client) ([]WeakTopic, error) {
	adm := kadm.NewClient(cl)
	var names []string
	for topic := range Topics(cfg) {
		names = append(names, topic)
	}
	slices.Sort(names)
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topics: %w", err)
	}
	var existing []string
	for _, topic := range names {
		if d, ok := details[topic]; ok && d.Err == nil {
			existing = append(existing, topic)
		}
	}
	if len(existing) == 0 {
		return nil, nil
	}
	configs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	minISR := map[string]int{}
	for _, rc := range configs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" && c.Value != nil {
				minISR[rc.Name], _ = strconv.Atoi(*c.Value)
			}
		}
	}
	var weak []WeakTopic
	for _, topic := range existing {
		replicas := math.MaxInt
		for _, p := range details[topic].Partitions {
			replicas = min(replicas, len(p.Replicas))
		}
		if replicas < cfg.Kafka.ReplicationFactor {
			weak = append(weak, WeakTopic{topic, fmt.Sprintf("%d replicas, kafka.replication_factor is %d", replicas, cfg.Kafka.ReplicationFactor)})
		}
		if m, ok := minISR[topic]; ok && m < cfg.Kafka.MinInsyncReplicas {
			weak = append(weak, WeakTopic{topic, fmt.Sprintf("min.insync.replicas=%d, kafka.min_insync_replicas is %d", m, cfg.Kafka.MinInsyncReplicas)})
		}
	}
	return weak, nil
}

// WarnWeakTopics logs a warning naming each topic WeakTopics finds, without refusing to start:
// a topic that already existed keeps its replication (a reassignment is the operator's call).
func WarnWeakTopics(ctx context.Context, cfg *config.Config, cl *kgo.Client, log *zap.Logger) {
	weak, err := WeakTopics(ctx, cfg, cl)
	if err != nil {
		log.Warn("could not check the replication of existing topics", zap.Error(err))
	}
	for _, w := range weak {
		log.Warn("topic less durable than configured", zap.String("topic", w.Topic), zap.String("problem", w.Problem))
	}
}

// Ping returns nil when a broker answers a metadata request within the context's deadline.
func Ping(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// Header returns the value of a record header, or "".
func Header(r *kgo.Record, key string) string { return string(HeaderBytes(r, key)) }

// HeaderBytes is Header without the copy into a string, for checks on every record.
func HeaderBytes(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
