package delivery

import (
	"crypto/rand"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Retry- and dead-letter-topic records carry the config.Header* headers. Times are RFC 3339 UTC
// with milliseconds.

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// ParseHeaderTime reads a header time; the zero time for "" or a bad value.
func ParseHeaderTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// item is one event on its way to the vendor, with its history.
type item struct {
	ev           *schemas.FilteredEvent
	value        []byte // the event's encoded bytes, forwarded as is to the retry/dead-letter topics
	attempts     int    // delivery attempts already made
	firstFailure time.Time
	lastError    string
	origin       string // topic it was read from
	part         int32  // partition it was read from: its journal lines go there
	limit        int    // attempts allowed in all; 0: delivery.max_attempts
	claimed      bool   // holds the runner's in-flight claim on the event (inflight)
}

// itemFromRecord decodes a record of a destination, retry or dead-letter topic.
func itemFromRecord(rec *kgo.Record) (*item, error) {
	ev, err := schemas.FilteredEvents.Decode(rec.Value)
	if err != nil {
		return nil, err
	}
	it := &item{ev: &ev, value: rec.Value, origin: rec.Topic, part: rec.Partition,
		firstFailure: ParseHeaderTime(kafka.Header(rec, config.HeaderFirstFailure)), lastError: kafka.Header(rec, config.HeaderError)}
	it.attempts, _ = strconv.Atoi(kafka.Header(rec, config.HeaderAttempts))
	if o := kafka.Header(rec, config.HeaderOriginalTopic); o != "" {
		it.origin = o
	}
	return it, nil
}

// NotBefore returns a retry record's due time (zero: due now).
func NotBefore(rec *kgo.Record) time.Time {
	return ParseHeaderTime(kafka.Header(rec, config.HeaderNotBefore))
}

// records turns a delivery pass's outcomes into the records to store: an audit row for every
// event blocked or dead-lettered unsent (the rows of a request made are its journal outcome,
// journal.outcome), a dead-letter record for every event that ends there, and — when
// toRetryTopic — a retry record for every event due again (dlq replay keeps those in process
// instead).
func (r *Runner) records(c *cycle, toRetryTopic bool) []*kgo.Record {
	out := make([]*kgo.Record, 0, len(c.outcomes)/4)
	for _, o := range c.outcomes {
		if o.status != statusDeferred && o.status != statusAlreadyDelivered && !o.journaled {
			out = append(out, r.auditRecord(o.it.ev, o.attempt, o.status, o.http, o.reason, o.latency))
		}
		switch {
		case o.status == StatusDeadLettered || o.parked:
			out = append(out, r.deadLetterRecord(o.it, o.http))
		case (o.status == StatusRetrying || o.status == statusDeferred || o.again) && toRetryTopic:
			out = append(out, r.retryRecord(o.it, o.notBefore))
		}
	}
	return out
}

func (r *Runner) auditRecord(ev *schemas.FilteredEvent, attempt int, status string, httpStatus int, reason string, latency time.Duration) *kgo.Record {
	d := schemas.Delivery{
		EventID: ev.EventID, Destination: r.dest.Name, Attempt: attempt, Status: status,
		HTTPStatus: httpStatus, Error: reason, LatencyMs: latency.Milliseconds(), AtMs: r.now().UnixMilli(),
		// Unique per attempt: the audit keeps two real requests as two rows (docs/audit.md).
		DeliveryID: rand.Text(),
		RunID:      ev.RunID, // a repair's events carry their replay run's id; live traffic none
	}
	return &kgo.Record{Topic: r.cfg.Topic(config.TopicDeliveries), Key: []byte(ev.UserKey), Value: schemas.Deliveries.MustEncode(&d)}
}

func (r *Runner) retryRecord(it *item, notBefore time.Time) *kgo.Record {
	return &kgo.Record{
		Topic: r.cfg.Topic(config.RetryTopic(r.dest.Name)), Key: []byte(it.ev.UserKey), Value: it.value,
		Headers: []kgo.RecordHeader{
			{Key: config.HeaderAttempts, Value: []byte(strconv.Itoa(it.attempts))},
			{Key: config.HeaderFirstFailure, Value: []byte(formatTime(it.firstFailure))},
			{Key: config.HeaderNotBefore, Value: []byte(formatTime(notBefore))},
			{Key: config.HeaderError, Value: []byte(it.lastError)},
			{Key: config.HeaderOriginalTopic, Value: []byte(it.origin)},
		},
	}
}

func (r *Runner) deadLetterRecord(it *item, httpStatus int) *kgo.Record {
	first := it.firstFailure
	if first.IsZero() {
		first = r.now()
	}
	return &kgo.Record{
		Topic: r.cfg.Topic(config.DLQTopic(r.dest.Name)), Key: []byte(it.ev.UserKey), Value: it.value,
		Headers: []kgo.RecordHeader{
			{Key: config.HeaderError, Value: []byte(it.lastError)},
			{Key: config.HeaderAttempts, Value: []byte(strconv.Itoa(it.attempts))},
			{Key: config.HeaderFirstFailure, Value: []byte(formatTime(first))},
			{Key: config.HeaderFailedAt, Value: []byte(formatTime(r.now()))},
			{Key: config.HeaderHTTPStatus, Value: []byte(strconv.Itoa(httpStatus))},
			{Key: config.HeaderOriginalTopic, Value: []byte(it.origin)},
		},
	}
}

// deadLetterUndecodable parks a record no FilteredEvent schema wrote: it must not stall the
// partition, and it is kept byte for byte for whoever investigates.
func (r *Runner) deadLetterUndecodable(rec *kgo.Record, cause error) *kgo.Record {
	deadLetteredEvents.WithLabelValues(r.dest.Name).Inc()
	metrics.Discarded.WithLabelValues(metrics.StageSink, "undecodable").Inc()
	return &kgo.Record{
		Topic: r.cfg.Topic(config.DLQTopic(r.dest.Name)), Key: rec.Key, Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: config.HeaderError, Value: []byte("undecodable: " + cause.Error())},
			{Key: config.HeaderAttempts, Value: []byte("0")},
			{Key: config.HeaderFirstFailure, Value: []byte(formatTime(r.now()))},
			{Key: config.HeaderFailedAt, Value: []byte(formatTime(r.now()))},
			{Key: config.HeaderHTTPStatus, Value: []byte("0")},
			{Key: config.HeaderOriginalTopic, Value: []byte(rec.Topic)},
		},
	}
}
