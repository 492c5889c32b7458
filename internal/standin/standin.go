// Package standin runs in-process stand-ins for the vendor APIs tollgate delivers to. Each one
// answers like the real API — paths, status codes, error bodies, TikTok's errors inside HTTP 200,
// GA4's 204 to anything — so adapters and the runner can be tested, and the demo run, without
// the internet. Every request is recorded (method, path, query, headers, body) for tests to
// inspect, and faults can be injected: 429 with Retry-After, 5xx, hangs, per-event rejections.
//
// Tests use New (an httptest server on a random loopback port); the demo uses Run, which serves
// several stand-ins on fixed addresses until its context ends.
package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Kinds are the vendors a stand-in can play: the policy's destination types.
var Kinds = policy.DestinationTypes

// maxBody bounds a recorded request body; real vendors refuse far smaller bodies.
const maxBody = 16 << 20

// Request is one request a stand-in received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is what the stand-in answered; 0 while the request is still being answered, or
	// when the client gave up during a hang.
	Status int
	// Accepted is true when the vendor would have taken the events (for TikTok: HTTP 200 and
	// body code 0; for GA4: always, as GA4 accepts anything).
	Accepted bool
	// EventIDs are the ids of the events in the body (Meta and TikTok event_id, Google Ads
	// transactionId, webhook event_id; GA4 events carry none).
	EventIDs []string
	// Keys tell the events of the body apart where they carry no id: for GA4, client_id,
	// timestamp_micros and name ("c1|1763892000000000|purchase"); for the others, the event ids.
	// Counting keys finds an event a vendor received twice.
	Keys []string
	At   time.Time
}

// Fault is an injected failure. Faults set with SetFailures are used in order, one request at a
// time; a request with no fault left gets the vendor's normal answer.
type Fault struct {
	// Status is the HTTP status to answer; 0 answers normally (after Hang).
	Status int
	// RetryAfter is sent as the Retry-After header (and as RetryInfo by Google Ads) when set.
	RetryAfter string
	// Hang delays the answer, until the client gives up or the stand-in closes if sooner.
	Hang time.Duration
	// Body replaces the vendor-shaped error body the stand-in would send for Status.
	Body string
	// Reset drops the connection with a TCP reset instead of answering (after Hang, if set),
	// as a crashing gateway or a load balancer killing the connection does.
	Reset bool
	// Count is how many consecutive requests the fault applies to: 0 means 1, a negative count
	// means every request until the next SetFailures or Reset.
	Count int
}

// Server is one running stand-in. It is safe for concurrent use.
type Server struct {
	// URL is the base URL to put in a destination's endpoint (or, for webhooks, url + a path).
	URL  string
	Kind string

	handle   vendorFunc
	mu       sync.Mutex
	requests []Request
	faults   []Fault
	reject   map[string]bool
	secret   []byte // webhook signing key; nil: signatures are not checked
	log      *zap.Logger
	done     chan struct{} // closed by Close: releases hanging requests
	stop     func()
	inFlight int // requests being answered now, and the most there have been at once
	maxIn    int
	forget   bool // WithoutRecords: nothing kept (Requests, EventIDs and Keys stay empty)
}

// Option configures a stand-in.
type Option func(*Server) error

// WithLogger logs one line per request (kind, method, path, status, events) — never bodies,
// queries or headers, which carry tokens and hashed identifiers.
func WithLogger(log *zap.Logger) Option {
	return func(s *Server) error { s.log = log; return nil }
}

// WithWebhookSecret makes a webhook stand-in verify Standard Webhooks signatures with the secret
// ("whsec_<base64>" or raw), answering 401 to a bad or stale signature, as receivers should.
func WithWebhookSecret(secret string) Option {
	return func(s *Server) error {
		key, err := decodeSecret(secret)
		s.secret = key
		return err
	}
}

// WithoutRecords keeps no request: a long-running stand-in (`tollgate standins`, the demo's and
// the bench's) would otherwise hold every body it was sent until it stops, and the bench's
// stand-ins, which play vendors on other hosts, would take the cores from the pipeline for
// their own garbage collection.
func WithoutRecords() Option {
	return func(s *Server) error { s.forget = true; return nil }
}

func newServer(kind string, opts []Option) (*Server, error) {
	h, ok := vendors[kind]
	if !ok {
		return nil, fmt.Errorf("standin: unknown kind %q (known: %v)", kind, Kinds)
	}
	s := &Server{Kind: kind, handle: h, reject: map[string]bool{}, log: zap.NewNop(), done: make(chan struct{})}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("standin %s: %w", kind, err)
		}
	}
	return s, nil
}

// New starts a stand-in on a random loopback port, for tests. It panics on an unknown kind or a
// bad option, like httptest.NewServer on a listen failure.
func New(kind string, opts ...Option) *Server {
	s, err := newServer(kind, opts)
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(s)
	s.URL, s.stop = ts.URL, ts.Close
	return s
}

// Serve starts a stand-in on a fixed address ("127.0.0.1:9102") and serves in the background
// until Close.
func Serve(kind, addr string, opts ...Option) (*Server, error) {
	s, err := newServer(kind, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("standin %s: %w", kind, err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	s.URL = "http://" + ln.Addr().String()
	s.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
	}
	return s, nil
}

// Close stops the stand-in, releasing hanging requests first.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.mu.Unlock()
	s.stop()
}

// Requests returns a copy of every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// MaxConcurrent returns the most requests the stand-in was answering at once.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIn
}

// EventIDs returns the ids of the events of every accepted request, in arrival order.
func (s *Server) EventIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range s.requests {
		if r.Accepted {
			ids = append(ids, r.EventIDs...)
		}
	}
	return ids
}

// Keys returns the event keys (see Request.Keys) of every accepted request, in arrival order.
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for _, r := range s.requests {
		if r.Accepted {
			keys = append(keys, r.Keys...)
		}
	}
	return keys
}

// SetFailures replaces the queue of injected faults.
func (s *Server) SetFailures(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = slices.Clone(faults)
}

// RejectEvents makes the vendor refuse any request carrying one of these event ids the way it
// refuses an invalid event: Meta fails the whole request (400, code 100), TikTok answers code
// 40002, Google Ads a 400 naming the rows, a webhook 400. GA4 accepts anything, as it does.
func (s *Server) RejectEvents(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.reject[id] = true
	}
}

// Reset forgets recorded requests, faults and rejections.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.faults, s.reject = nil, nil, map[string]bool{}
	s.maxIn = s.inFlight
}

func (s *Server) rejected(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reject[id]
}

// nextFault takes the fault for one request, if any.
func (s *Server) nextFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	f := s.faults[0]
	switch {
	case f.Count < 0:
	case f.Count <= 1:
		s.faults = s.faults[1:]
	default:
		s.faults[0].Count--
	}
	return f, true
}

// answer is a stand-in's reply to one request.
type answer struct {
	status   int
	header   http.Header
	body     []byte
	accepted bool
	ids      []string
	keys     []string // set only where they differ from ids (GA4)
}

// ServeHTTP records the request, applies the next fault, and answers like the vendor.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	s.mu.Lock()
	idx := len(s.requests)
	if !s.forget {
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			Header: r.Header.Clone(), Body: body, At: time.Now()})
	}
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	f, faulty := s.nextFault()
	if f.Hang > 0 {
		t := time.NewTimer(f.Hang)
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-s.done:
		}
		t.Stop()
		if r.Context().Err() != nil {
			s.logRequest(r, 0, 0)
			return
		}
	}
	if faulty && f.Reset {
		resetConnection(w)
		s.logRequest(r, 0, 0)
		return
	}
	var a answer
	if faulty && f.Status != 0 {
		a = faultAnswer(s.Kind, f)
	} else {
		a = s.handle(s, r, body)
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if len(a.body) > 0 && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)

	s.mu.Lock()
	if !s.forget && idx < len(s.requests) { // Reset may have run meanwhile
		s.requests[idx].Status, s.requests[idx].Accepted, s.requests[idx].EventIDs = a.status, a.accepted, a.ids
		s.requests[idx].Keys = a.ids
		if a.keys != nil {
			s.requests[idx].Keys = a.keys
		}
	}
	s.mu.Unlock()
	s.logRequest(r, a.status, len(a.ids))
}

// resetConnection closes the request's connection with RST (SO_LINGER 0), so the client sees
// "connection reset by peer" rather than a clean close.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // closes the connection, without the reset
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (s *Server) logRequest(r *http.Request, status, events int) {
	s.log.Info("standin request", zap.String("kind", s.Kind), zap.String("method", r.Method),
		zap.String("path", r.URL.Path), zap.Int("status", status), zap.Int("events", events))
}

// Run serves a stand-in for each kind → address until ctx ends, logging one line per request
// and keeping none (WithoutRecords). It is what `tollgate standins` runs for `make demo`. A
// failure to start any of them stops the others and is returned; after ctx ends, Run returns
// nil.
func Run(ctx context.Context, addrs map[string]string, log *zap.Logger, opts ...Option) error {
	if len(addrs) == 0 {
		return errors.New("standin: no stand-in to run")
	}
	var servers []*Server
	stopAll := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	kinds := make([]string, 0, len(addrs))
	for k := range addrs {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		s, err := Serve(kind, addrs[kind], append([]Option{WithLogger(log), WithoutRecords()}, opts...)...)
		if err != nil {
			stopAll()
			return err
		}
		servers = append(servers, s)
		log.Info("standin listening", zap.String("kind", kind), zap.String("url", s.URL))
	}
	<-ctx.Done()
	stopAll()
	return nil
}
