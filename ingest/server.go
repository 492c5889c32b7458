// Package ingest is tollgate's HTTP collector (docs/api.md): it authenticates write keys,
// validates events and consent updates, adds what the request says (GPC signal, jurisdiction
// from trusted CDN headers) and writes them to the raw topic, keyed by user so one partition
// orders a user's events and choices. It answers 2xx only after Kafka acknowledged every
// accepted record; if Kafka cannot take them it answers 503 with Retry-After.
//
// It never logs request bodies, identifiers, property values, write keys or client addresses:
// only counts and error classes.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// Producer writes records to Kafka. *kgo.Client satisfies it, and Gathering(client) is the one
// to serve with (produce.go); configure the client with franz-go's defaults (acks=all,
// idempotent writes) so an acknowledged record is on every in-sync replica, and with
// kgo.RecordDeliveryTimeout(ProduceTimeout) so a call the request stopped waiting for ends soon
// after.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
	Ping(ctx context.Context) error
}

var (
	_ Producer = (*kgo.Client)(nil)
	_ Producer = gathering{}
)

// Defaults of a Server; see the Options.
const (
	// ProduceTimeout is the default wait for Kafka's acknowledgement of one request's
	// records; past it the request gets 503 and the client retries. Use it as the client's
	// kgo.RecordDeliveryTimeout too, so records do not outlive the request that waited for them.
	ProduceTimeout = 5 * time.Second
	// DefaultShutdownTimeout bounds the drain of in-flight requests when Run's context ends; it
	// is longer than the produce timeout so requests waiting on Kafka can finish, and short
	// enough for `tollgate run` to exit within its 10 s.
	DefaultShutdownTimeout = 8 * time.Second
	readyTimeout           = 2 * time.Second
)

// The raw topic's config.HeaderType header names what a record holds. Readers still tell the
// types apart by the Avro fingerprint (schemas.Events.Is); the header is for people and tools.
var (
	typeEvent   = []byte("event")
	typeConsent = []byte("consent")
)

// Server is the ingest HTTP API. It is an http.Handler; Run serves it on cfg.Ingest.Listen.
type Server struct {
	cfg      *config.Config
	producer Producer
	log      *zap.Logger
	keys     writeKeys
	limits   keyLimits // per write key, ratelimit.go; nil when ingest.rate_limit is 0
	topic    string
	mux      *http.ServeMux

	metrics         *collectors
	produceTimeout  time.Duration
	shutdownTimeout time.Duration

	purposes    map[string]bool   // known purposes, for /v1/consent
	purposeList string            // the same, for messages
	categories  map[string]string // Segment category -> purpose
}

// Option adjusts a Server.
type Option func(*Server)

// WithProduceTimeout sets how long a request waits for Kafka's acknowledgement. Default
// ProduceTimeout.
func WithProduceTimeout(d time.Duration) Option {
	return func(s *Server) { s.produceTimeout = d }
}

// WithShutdownTimeout sets how long Run drains in-flight requests. Default DefaultShutdownTimeout.
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *Server) { s.shutdownTimeout = d }
}

// New returns the ingest API for cfg, producing to cfg.Topic(config.TopicRaw) through producer.
// cfg must have been loaded (config.Load) with its policy.
func New(cfg *config.Config, producer Producer, log *zap.Logger, opts ...Option) *Server {
	s := &Server{
		cfg:             cfg,
		producer:        producer,
		log:             log.Named("ingest"),
		keys:            newWriteKeys(cfg.Ingest.WriteKeys),
		limits:          newKeyLimits(cfg.Ingest.WriteKeys, cfg.Ingest.RateLimit, cfg.Ingest.RateBurst),
		topic:           cfg.Topic(config.TopicRaw),
		produceTimeout:  ProduceTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		purposes:        map[string]bool{},
		categories:      map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	if p := cfg.Policy; p != nil {
		for _, purpose := range p.Purposes {
			s.purposes[purpose] = true
		}
		s.purposeList = strings.Join(p.Purposes, ", ")
		for cat, purpose := range p.SegmentCategories {
			s.categories[cat] = purpose
		}
	}
	s.metrics = defaultMetrics

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", s.instrument(epEvents, s.handleEvents))
	mux.HandleFunc("POST /v1/consent", s.instrument(epConsent, s.handleConsent))
	mux.HandleFunc("POST /v1/erase", s.instrument(epErase, s.handleErase))
	mux.HandleFunc("POST /v1/batch", s.instrument(epBatch, s.segmentHandler("")))
	mux.HandleFunc("POST /v1/track", s.instrument(epTrack, s.segmentHandler(segTrack)))
	mux.HandleFunc("POST /v1/page", s.instrument(epPage, s.segmentHandler(segPage)))
	mux.HandleFunc("POST /v1/identify", s.instrument(epIdentify, s.segmentHandler(segIdentify)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	s.routeBrowser(mux) // GET /tg.js, and /demo/ when ingest.demo_page is on
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.DefaultGatherer, promhttp.HandlerOpts{}))
	s.mux = mux
	return s
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Run listens on cfg.Ingest.Listen and serves until ctx ends, then stops accepting connections
// and drains in-flight requests (each still gets its answer after Kafka's acknowledgement) for
// up to the shutdown timeout. It returns nil after a clean drain. Close the Producer only after
// Run returned.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Ingest.Listen)
	if err != nil {
		return fmt.Errorf("ingest: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests, socket activation). It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second, // well above the produce timeout
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(&serverErrorLog{log: s.log}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("ingest listening", zap.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("ingest: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("ingest draining")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("ingest: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ingest: serve: %w", err)
	}
	s.log.Info("ingest stopped")
	return nil
}

// serverErrorLog sends net/http's own error log to zap, with client addresses removed.
type serverErrorLog struct{ log *zap.Logger }

var clientAddr = regexp.MustCompile(`(from|serving) \S+`)

func (l *serverErrorLog) Write(p []byte) (int, error) {
	msg := clientAddr.ReplaceAllString(strings.TrimSpace(string(p)), "$1 <client>")
	l.log.Warn("http server", zap.String("error", msg))
	return len(p), nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.producer.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "kafka unreachable")
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// eventsReply is the answer of POST /v1/events.
type eventsReply struct {
	Error    string      `json:"error,omitempty"`
	Accepted int         `json:"accepted"`
	Rejected []rejection `json:"rejected"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	key := bearerKey(r)
	if !s.keys.valid(key) {
		s.unauthorized(w, "Bearer")
		return
	}
	res, ok := s.decodeRequest(w, r, (*decoder).native)
	if !ok {
		return
	}
	s.metrics.decoded(res)
	rejected := res.rejected
	if rejected == nil {
		rejected = []rejection{}
	}
	if len(res.events) == 0 {
		writeJSON(w, http.StatusBadRequest, eventsReply{Error: noneAccepted(res), Rejected: rejected})
		return
	}
	if !s.admit(w, key, len(res.events)) || !s.store(w, r, res) {
		return
	}
	writeJSON(w, http.StatusAccepted, eventsReply{Accepted: len(res.events), Rejected: rejected})
}

func noneAccepted(res *decoded) string {
	if len(res.rejected) == 1 {
		return res.rejected[0].Error
	}
	return "no event accepted"
}

// decodeRequest reads the body and decodes it with the request's GPC signal and jurisdiction.
// It answers the request itself and returns false when the whole body is refused.
func (s *Server) decodeRequest(w http.ResponseWriter, r *http.Request, decode func(*decoder, []byte) (*decoded, *requestError)) (*decoded, bool) {
	received := time.Now()
	buf, rerr := readBody(w, r)
	if rerr != nil {
		s.fail(w, rerr)
		return nil, false
	}
	defer releaseBody(buf)
	gcm, rerr := queryGCM(r.URL.Query())
	if rerr != nil {
		s.fail(w, rerr)
		return nil, false
	}
	d := &decoder{
		received:     received,
		gcm:          gcm,
		gpc:          strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1",
		jurisdiction: s.jurisdiction(r.Header),
		categories:   s.categories,
	}
	res, rerr := decode(d, buf.Bytes())
	if rerr != nil {
		s.fail(w, rerr)
		return nil, false
	}
	return res, true
}

// jurisdiction derives a jurisdiction from the trusted CDN headers named in the config, and only
// those: a browser can set any header, so none is read unless the operator named it. The
// "CC-REGION" code is tried before "CC"; a region header may hold "CA" or "US-CA".
func (s *Server) jurisdiction(h http.Header) string {
	in := s.cfg.Ingest
	var country, region string
	if in.CountryHeader != "" {
		country = strings.ToUpper(strings.TrimSpace(h.Get(in.CountryHeader)))
	}
	if in.RegionHeader != "" {
		region = strings.ToUpper(strings.TrimSpace(h.Get(in.RegionHeader)))
	}
	if region != "" {
		key := region
		if country != "" && !strings.HasPrefix(region, country+"-") {
			key = country + "-" + region
		}
		if j, ok := in.Jurisdictions[key]; ok && strings.Contains(key, "-") {
			return j
		}
	}
	if country != "" {
		return in.Jurisdictions[country]
	}
	return ""
}

// unavailable answers 503: the records were not all stored, the client should send them again.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "events not stored: Kafka is unavailable, retry"})
}

// fail answers a request refused as a whole.
func (s *Server) fail(w http.ResponseWriter, e *requestError) {
	s.metrics.rejected(e.reason, 1)
	writeJSON(w, e.status, errorBody{Error: e.msg})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"error":"internal error"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
