package ingest

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/schemas"
)

// store produces every decoded event and waits for Kafka's acknowledgement. When Kafka does
// not acknowledge them all it answers 503 itself and returns false.
func (s *Server) store(w http.ResponseWriter, r *http.Request, res *decoded) bool {
	recs := make([]*kgo.Record, len(res.events))
	for i, ev := range res.events {
		val, err := encodeEvent(ev)
		if err != nil { // validation should make this impossible: a bug, not the client's fault
			s.log.Error("encode event", zap.String("error_class", "encode"))
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
			return false
		}
		recs[i] = &kgo.Record{Topic: s.topic, Key: []byte(ev.UserKey()), Value: val,
			Headers: []kgo.RecordHeader{{Key: config.HeaderType, Value: typeEvent}}}
	}
	if err := s.produce(r.Context(), recs); err != nil {
		s.metrics.rejected(reasonUnavailable, len(recs))
		unavailable(w)
		return false
	}
	s.metrics.accept(len(recs))
	return true
}

// produce writes recs and returns nil only if Kafka acknowledged every one of them, within the
// produce timeout. franz-go cannot fail a record once an idempotent produce request carrying it
// was sent, so ProduceSync may outlive the context; the request stops waiting for it anyway and
// answers 503 (the records may still land: at-least-once, deduplicated downstream by event_id).
// The client's kgo.RecordDeliveryTimeout bounds how long such a call lingers.
//
// A client that hangs up does not cancel the write: a browser sends its last events with
// sendBeacon as the tab closes and never reads the answer, and those events must still be stored.
func (s *Server) produce(ctx context.Context, recs []*kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.produceTimeout)
	defer cancel()
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- s.producer.ProduceSync(ctx, recs...) }()
	var results kgo.ProduceResults
	select {
	case results = <-done:
	case <-ctx.Done():
		return s.produceFailed(len(recs), len(recs), ctx.Err())
	}
	failed, first := 0, error(nil)
	for _, res := range results {
		if res.Err != nil {
			failed++
			first = cmp.Or(first, res.Err)
		}
	}
	if len(results) != len(recs) { // a producer that lost track of records did not store them
		failed += max(len(recs)-len(results), 0)
		first = cmp.Or(first, errIncomplete)
	}
	if failed == 0 {
		return nil
	}
	return s.produceFailed(len(recs), failed, first)
}

// Gathering returns cl as a Producer whose ProduceSync lets concurrent requests' records share
// produce requests: each record waits up to the client's kgo.ProducerLinger for others bound
// for its partition. kgo's own ProduceSync ends that wait at once for the partitions it wrote
// to, so at 2,000 single-event requests/s every event was a produce request of its own, and
// the broker's work per request was most of what ingest cost it (docs/performance.md,
// "Ingest's p99").
func Gathering(cl *kgo.Client) Producer { return gathering{cl} }

type gathering struct{ *kgo.Client }

// ProduceSync produces rs and returns when each one's promise has been called, which franz-go
// does exactly once per record: acknowledged, failed, or its context done before it was sent.
func (g gathering) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, len(rs))
	var wg sync.WaitGroup
	wg.Add(len(rs))
	for i, r := range rs {
		g.Produce(ctx, r, func(r *kgo.Record, err error) {
			out[i] = kgo.ProduceResult{Record: r, Err: err} // each promise its own index
			wg.Done()
		})
	}
	wg.Wait()
	return out
}

func (s *Server) produceFailed(records, failed int, err error) error {
	s.metrics.produceFailed(failed)
	s.log.Warn("produce failed", zap.Int("records", records), zap.Int("failed", failed), zap.String("error_class", errorClass(err)))
	return err
}

var errIncomplete = errors.New("producer returned fewer results than records")

func encodeEvent(ev *schemas.Event) ([]byte, error) { return schemas.Events.Encode(ev) }

func encodeConsent(u *schemas.ConsentUpdate) ([]byte, error) { return schemas.ConsentUpdates.Encode(u) }

// ConsentRecord is the raw-topic record of a consent update or erasure, keyed by the user like
// their events so one partition orders both. `tollgate erase` writes the same record as
// POST /v1/erase.
func ConsentRecord(topic string, u *schemas.ConsentUpdate) (*kgo.Record, error) {
	val, err := encodeConsent(u)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(u.UserKey), Value: val,
		Headers: []kgo.RecordHeader{{Key: config.HeaderType, Value: typeConsent}}}, nil
}

// errorClass names a produce error for logs and never carries request data: a Kafka error code,
// or one of timeout, canceled, client_closed, record_timeout, incomplete, other.
func errorClass(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return strings.ToLower(ke.Message)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "record_timeout"
	case errors.Is(err, errIncomplete):
		return "incomplete"
	}
	return "other"
}
