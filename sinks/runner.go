package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Delivery statuses recorded in the deliveries audit table (CONTRACT §6).
const (
	StatusDelivered    = "delivered"
	StatusRetrying     = "retrying"
	StatusDeadLettered = "dead_lettered"
	StatusBlocked      = "blocked"
)

// maxResponseBody bounds how much of a vendor's answer is read for classification.
const maxResponseBody = 64 << 10

// Runner delivers one destination's filtered topic to its vendor. Each destination has its own
// runner, consumer group and Kafka clients, so a slow or failing vendor holds up only itself.
type Runner struct {
	cfg     *config.Config
	dest    *policy.Destination
	adapter Adapter
	http    *http.Client
	log     *zap.Logger
	now     func() time.Time
}

// NewRunner returns the runner of one destination.
func NewRunner(cfg *config.Config, dest *policy.Destination, adapter Adapter, log *zap.Logger) *Runner {
	return &Runner{
		cfg: cfg, dest: dest, adapter: adapter,
		http: NewHTTPClient(dest, RequestTimeout(adapter, cfg.Delivery.Timeout)),
		log:  log.Named("sink").With(zap.String("destination", dest.Name)),
		now:  time.Now,
	}
}

// Group is the consumer group of a destination's sink; it starts with the topic prefix, like the
// topics, so deployments sharing a broker stay apart.
func Group(cfg *config.Config, dest string) string { return cfg.Kafka.TopicPrefix + "sink." + dest }

// Run consumes the destination's topic until ctx ends. Offsets are committed only after every
// event of a poll was delivered, dead-lettered or blocked, and its audit records were stored.
func (r *Runner) Run(ctx context.Context) error {
	topic := r.cfg.Topic(config.DestTopic(r.dest.Name))
	consumer, err := kafka.NewClient(r.cfg, r.log,
		kgo.ConsumerGroup(Group(r.cfg, r.dest.Name)),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	// With BlockRebalanceOnPoll, leaving the group waits for AllowRebalance: allow it first.
	defer func() { consumer.AllowRebalance(); consumer.Close() }()
	r.log.Info("sink started", zap.String("topic", topic), zap.String("type", r.dest.Type))
	for {
		fetches := consumer.PollRecords(ctx, 10*r.adapter.MaxBatch())
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			if err := r.deliverAll(ctx, consumer, recs); err != nil {
				consumer.AllowRebalance()
				if ctx.Err() != nil {
					return nil // shutting down: the uncommitted records are delivered again after restart
				}
				return err
			}
			if err := consumer.CommitRecords(context.WithoutCancel(ctx), recs...); err != nil {
				r.log.Warn("commit offsets", zap.Error(err))
			}
		}
		consumer.AllowRebalance()
	}
}

// deliverAll delivers one poll's records and stores their audit and dead-letter records.
func (r *Runner) deliverAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var out []*kgo.Record
	var batch []*schemas.FilteredEvent
	for _, rec := range recs {
		ev, err := schemas.FilteredEvents.Decode(rec.Value)
		if err != nil {
			out = append(out, r.deadLetterRaw(rec, err))
			continue
		}
		if err := r.adapter.Validate(&ev, r.now()); err != nil {
			out = append(out, r.deadLetter(&ev, 0, "invalid: "+err.Error())...)
			continue
		}
		batch = append(batch, &ev)
	}
	for _, b := range SplitBatch(r.adapter, batch) {
		recs, err := r.deliverBatch(ctx, b)
		out = append(out, recs...)
		if err != nil {
			return err
		}
	}
	if err := cl.ProduceSync(context.WithoutCancel(ctx), out...).FirstErr(); err != nil {
		return fmt.Errorf("store delivery records: %w", err)
	}
	return nil
}

// deliverBatch sends a batch, retrying temporary failures with exponential backoff and full
// jitter (honouring the vendor's Retry-After) up to the configured attempts. It returns the
// audit and dead-letter records of every event of the batch.
func (r *Runner) deliverBatch(ctx context.Context, batch []*schemas.FilteredEvent) ([]*kgo.Record, error) {
	var out []*kgo.Record
	for attempt := 1; ; attempt++ {
		start := r.now()
		v := r.send(ctx, batch)
		latency := r.now().Sub(start)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		var retry []*schemas.FilteredEvent
		for i, ev := range batch {
			class, reason := v.Class, v.Reason
			if why, failed := v.Failed[i]; failed {
				class, reason = Permanent, why
			}
			switch {
			case class == Delivered:
				out = append(out, r.audit(ev, attempt, StatusDelivered, v, "", latency))
			case class == Retry && attempt < r.cfg.Delivery.MaxAttempts:
				out = append(out, r.audit(ev, attempt, StatusRetrying, v, reason, latency))
				retry = append(retry, ev)
			default:
				out = append(out, r.audit(ev, attempt, StatusDeadLettered, v, reason, latency))
				out = append(out, r.deadLetter(ev, attempt, reason)...)
			}
		}
		if len(retry) == 0 {
			return out, nil
		}
		batch = retry
		if err := sleep(ctx, r.backoff(attempt, v.RetryAfter)); err != nil {
			return out, err
		}
	}
}

// send performs one request. Transport failures (refused, reset, timeout) are temporary.
func (r *Runner) send(ctx context.Context, batch []*schemas.FilteredEvent) Verdict {
	req, err := r.adapter.NewRequest(ctx, batch)
	if err != nil {
		return Verdict{Class: Permanent, Reason: "build_request"}
	}
	resp, err := r.http.Do(req)
	if errors.Is(err, ErrPrivateAddress) {
		// Only a policy change (allow_private_network) can fix this: retrying would not help.
		return Verdict{Class: Permanent, Reason: "private_address_refused"}
	}
	if err != nil {
		return Verdict{Class: Retry, Reason: transportReason(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	v := r.adapter.Classify(resp.StatusCode, resp.Header, body, batch)
	v.status = resp.StatusCode
	return v
}

// backoff is exponential with full jitter, at least the vendor's Retry-After, at most MaxBackoff.
func (r *Runner) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceil := r.cfg.Delivery.InitialBackoff << min(attempt-1, 20)
	if ceil > r.cfg.Delivery.MaxBackoff || ceil <= 0 {
		ceil = r.cfg.Delivery.MaxBackoff
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return min(max(d, retryAfter), r.cfg.Delivery.MaxBackoff)
}

func (r *Runner) audit(ev *schemas.FilteredEvent, attempt int, status string, v Verdict, reason string, latency time.Duration) *kgo.Record {
	d := schemas.Delivery{
		EventID: ev.EventID, Destination: r.dest.Name, Attempt: attempt, Status: status,
		HTTPStatus: v.status, Error: reason, LatencyMs: latency.Milliseconds(), AtMs: r.now().UnixMilli(),
	}
	b, err := schemas.Deliveries.Encode(&d)
	if err != nil {
		panic(err) // our own well-typed record: a failure is a programming error
	}
	return &kgo.Record{Topic: r.cfg.Topic(config.TopicDeliveries), Key: []byte(ev.UserKey), Value: b}
}

// deadLetter parks an event on the destination's dead-letter topic with headers saying why.
func (r *Runner) deadLetter(ev *schemas.FilteredEvent, attempts int, reason string) []*kgo.Record {
	b, err := schemas.FilteredEvents.Encode(ev)
	if err != nil {
		panic(err)
	}
	recs := []*kgo.Record{{
		Topic: r.cfg.Topic(config.DLQTopic(r.dest.Name)), Key: []byte(ev.UserKey), Value: b,
		Headers: dlqHeaders(reason, attempts, r.cfg.Topic(config.DestTopic(r.dest.Name)), r.now()),
	}}
	if attempts == 0 { // never sent: still leave an audit row so the analyst sees why
		recs = append(recs, r.audit(ev, 0, StatusDeadLettered, Verdict{}, reason, 0))
	}
	return recs
}

func (r *Runner) deadLetterRaw(rec *kgo.Record, cause error) *kgo.Record {
	r.log.Warn("undecodable record dead-lettered", zap.Int32("partition", rec.Partition), zap.Int64("offset", rec.Offset), zap.Error(cause))
	return &kgo.Record{
		Topic: r.cfg.Topic(config.DLQTopic(r.dest.Name)), Key: rec.Key, Value: rec.Value,
		Headers: dlqHeaders("undecodable: "+cause.Error(), 0, rec.Topic, r.now()),
	}
}

func dlqHeaders(reason string, attempts int, origin string, now time.Time) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: "tg-error", Value: []byte(reason)},
		{Key: "tg-attempts", Value: []byte(strconv.Itoa(attempts))},
		{Key: "tg-original-topic", Value: []byte(origin)},
		{Key: "tg-failed-at", Value: []byte(now.UTC().Format(time.RFC3339))},
	}
}

// transportReason names a transport failure without echoing URLs (they may carry secrets).
func transportReason(err error) string {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "connection_error"
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
