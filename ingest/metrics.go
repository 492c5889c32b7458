package ingest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/metrics"
)

// Reasons of tollgate_ingest_rejected_events_total: a small fixed set, never raw error text.
const (
	// reasonInvalid: an event failed validation and was rejected alone (counted per event).
	reasonInvalid = "invalid"
	// reasonTooLarge: a body over 1 MiB (counted once per request, its events are unknown) or a
	// batch over 500 events (counted per event).
	reasonTooLarge = "too_large"
	// reasonMalformed: a body that is not JSON, not UTF-8 or not the expected shape (once per request).
	reasonMalformed = "malformed"
	// reasonUnauthorized: a missing or unknown write key (once per request).
	reasonUnauthorized = "unauthorized"
	// reasonUnavailable: valid events that Kafka did not acknowledge; the client got a 503 (per event).
	reasonUnavailable = "unavailable"
)

var rejectReasons = []string{reasonInvalid, reasonTooLarge, reasonMalformed, reasonUnauthorized, reasonUnavailable, reasonRateLimited}

// Endpoint label values of the request metrics.
const (
	epEvents   = "events"
	epConsent  = "consent"
	epErase    = "erase"
	epBatch    = "batch"
	epTrack    = "track"
	epPage     = "page"
	epIdentify = "identify"
)

var endpoints = []string{epEvents, epConsent, epErase, epBatch, epTrack, epPage, epIdentify}

// collectors are ingest's Prometheus collectors.
type collectors struct {
	received      prometheus.Counter
	accepted      prometheus.Counter
	rejectedVec   *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	produceErrors prometheus.Counter
}

// defaultMetrics are ingest's collectors, registered like every tollgate metric: package-level
// promauto collectors on the default registry, which /metrics serves. Every reason and endpoint
// series exists from the start, so rate() works at once.
var defaultMetrics = newMetrics()

func newMetrics() *collectors {
	m := &collectors{
		received: promauto.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_ingest_received_events_total",
			Help: "Events and consent updates read from request bodies, valid or not.",
		}),
		accepted: promauto.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_ingest_accepted_events_total",
			Help: "Events and consent updates acknowledged by Kafka and answered with a 2xx.",
		}),
		rejectedVec: promauto.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_ingest_rejected_events_total",
			Help: "Events not stored, by reason: invalid, too_large, malformed, unauthorized, unavailable, rate_limited. " +
				"Whole-request rejections whose events cannot be counted (malformed, unauthorized, body too large) count once.",
		}, []string{"reason"}),
		duration: promauto.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_ingest_request_duration_seconds",
			Help:    "Time from request start to response, by endpoint, including the wait for Kafka's acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		requests: promauto.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_ingest_requests_total",
			Help: "Requests answered, by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		produceErrors: promauto.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_ingest_produce_errors_total",
			Help: "Records Kafka did not acknowledge (broker down, timeout, refused write).",
		}),
	}
	for _, r := range rejectReasons {
		m.rejectedVec.WithLabelValues(r)
		metrics.Discarded.WithLabelValues(metrics.StageIngest, r)
	}
	for _, ep := range endpoints {
		m.duration.WithLabelValues(ep)
	}
	return m
}

// accept counts events Kafka acknowledged.
func (m *collectors) accept(n int) {
	m.accepted.Add(float64(n))
	metrics.Sent.WithLabelValues(metrics.StageIngest, "raw").Add(float64(n))
}

// produceFailed counts records Kafka did not acknowledge.
func (m *collectors) produceFailed(n int) {
	m.produceErrors.Add(float64(n))
	metrics.Errors.WithLabelValues(metrics.StageIngest, "produce").Add(float64(n))
}

func (m *collectors) rejected(reason string, n int) {
	if n > 0 {
		m.rejectedVec.WithLabelValues(reason).Add(float64(n))
		metrics.Discarded.WithLabelValues(metrics.StageIngest, reason).Add(float64(n))
	}
}

// decoded counts a decoded body's events and those rejected alone.
func (m *collectors) decoded(res *decoded) {
	m.received.Add(float64(res.items))
	metrics.Received.WithLabelValues(metrics.StageIngest).Add(float64(res.items))
	m.rejected(reasonInvalid, len(res.rejected))
}

// statusWriter records the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument wraps an API handler with the request metrics and a panic guard: a bug in one
// request answers 500 and is logged (without the request) instead of killing the connection.
func (s *Server) instrument(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	hist := s.metrics.duration.WithLabelValues(endpoint)
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", zap.String("endpoint", endpoint), zap.Stack("stack"))
				if sw.code == 0 {
					writeJSON(sw, http.StatusInternalServerError, errorBody{Error: "internal error"})
				}
			}
			hist.Observe(time.Since(start).Seconds())
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
		}()
		h(sw, r)
	}
}
