package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// placeholder marks, in a request body template, where the request's sequence number goes:
// in event ids (unique per event) and user ids (fresh users per request, so the processor's
// consent state grows the way real traffic makes it grow).
const placeholder = "@@@@@@@@@@"

// template is a request body with placeholders, rendered per request.
type template struct{ body []byte }

// newTemplate returns a body of n sample events (every consent combination, jurisdictions,
// health pages). Event j's id is <prefix><seq>-<j>; with sampled, event 0's id starts with "s"
// instead, which the end-to-end latency poller looks for.
func newTemplate(prefix string, n int, sampled bool) template {
	return templateOf(sampleEvents(n), prefix, 0, sampled)
}

// sampleEvents are n sample events over n/2 users (seed 7, so their user ids are u-7-N/a-7-N,
// which templateOf makes fresh per request).
func sampleEvents(n int) []sample.Event {
	return sample.Events(7, n, max(n/2, 1), time.Now().Add(-time.Minute))
}

// templateOf turns events into a request body template: event j's id is
// <prefix><seq>-<first+j>, and the users' ids carry the request's sequence number.
func templateOf(evs []sample.Event, prefix string, first int, sampled bool) template {
	for j := range evs {
		evs[j].EventID = fmt.Sprintf("%s%s-%04d", prefix, placeholder, first+j)
		if sampled && j == 0 {
			evs[j].EventID = "s" + placeholder
		}
		evs[j].Timestamp = "" // receive time: the bench may run for minutes
		if evs[j].UserID != "" {
			evs[j].UserID = strings.Replace(evs[j].UserID, "u-7-", "u-"+placeholder+"-", 1)
		} else {
			evs[j].AnonymousID = strings.Replace(evs[j].AnonymousID, "a-7-", "a-"+placeholder+"-", 1)
		}
	}
	var v any = evs[0]
	if len(evs) > 1 {
		v = map[string]any{"batch": evs}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return template{body: b}
}

func (t template) render(seq int64) []byte {
	return bytes.ReplaceAll(t.body, []byte(placeholder), fmt.Appendf(nil, "%010d", seq))
}

// poster sends bodies to /v1/events.
type poster struct {
	url, key string
	client   *http.Client
}

func newPoster(base, key string, conns int) *poster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = conns, conns, conns
	return &poster{url: base + "/v1/events", key: key, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// post sends one body and returns the status code (0 on a transport error).
func (p *poster) post(ctx context.Context, body []byte, gpc bool) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Content-Type", "application/json")
	if gpc {
		req.Header.Set("Sec-GPC", "1")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// statuses counts answers by status code.
type statuses struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *statuses) add(code int) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[int]int{}
	}
	s.m[code]++
	s.mu.Unlock()
}

func (s *statuses) errors() int {
	n := 0
	for code, c := range s.m {
		if code != http.StatusAccepted {
			n += c
		}
	}
	return n
}

func (s *statuses) json() map[string]int {
	out := map[string]int{}
	for code, c := range s.m {
		out[fmt.Sprint(code)] = c
	}
	return out
}

// closedLoop sends as fast as conns connections allow for d: the throughput test.
func closedLoop(ctx context.Context, p *poster, t template, perReq, conns int, d time.Duration, seq *atomic.Int64) (accepted int64, st *statuses) {
	st = &statuses{}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	var acc atomic.Int64
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				s := seq.Add(1)
				code := p.post(ctx, t.render(s), s%2 == 0)
				st.add(code)
				if code == http.StatusAccepted {
					acc.Add(int64(perReq))
				}
			}
		}()
	}
	wg.Wait()
	return acc.Load(), st
}

// openLoop sends rate requests per second for d from a fixed schedule: request i is due at
// start + i/rate whatever happened to earlier ones, and its latency counts from that intended
// time, not from when a worker got round to sending it. A server that stalls therefore shows its
// queueing in the numbers (no coordinated omission). workers bounds requests in flight; when all
// are busy, due requests wait and their wait is measured.
func openLoop(ctx context.Context, rate float64, d time.Duration, workers int, send func(i int64, intended time.Time) int) (lat []time.Duration, st *statuses, sent int64) {
	st = &statuses{}
	start := time.Now().Add(50 * time.Millisecond)
	total := int64(rate * d.Seconds())
	period := time.Duration(float64(time.Second) / rate)
	var next atomic.Int64
	var mu sync.Mutex
	lat = make([]time.Duration, 0, total)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				intended := start.Add(time.Duration(i) * period)
				if w := time.Until(intended); w > 0 {
					time.Sleep(w)
				}
				code := send(i, intended)
				l := time.Since(intended)
				st.add(code)
				mu.Lock()
				lat = append(lat, l)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, st, min(next.Load(), total)
}

// sendLags records how late the load generator began each request after its intended time: its
// own delay on the shared cores, which the latency figures include (they count from the intended
// time), told apart here from ingest's.
type sendLags struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *sendLags) add(intended time.Time) {
	d := time.Since(intended)
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *sendLags) json() map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := quantiles(l.ds, 0.5, 0.99, 1)
	return map[string]float64{"p50_ms": q[0], "p99_ms": q[1], "max_ms": q[2]}
}

// quantiles returns the q-quantiles of ds in milliseconds.
func quantiles(ds []time.Duration, qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for i, q := range qs {
		k := min(int(q*float64(len(s))), len(s)-1)
		out[i] = round(float64(s[k])/float64(time.Millisecond), 2)
	}
	return out
}
