package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// clusterTraffic sends events to ingest at a steady pace until stopped, as a client does: a
// request that gets no 2xx (a 503 while Kafka cannot take the events, a dropped connection, a
// timeout) is sent again with the same event ids until ingest accepts it. Every answer is logged
// with its time, so the test can say how ingest behaved during a fault.
type clusterTraffic struct {
	client *http.Client
	url    string

	mu       sync.Mutex
	accepted map[string]bool // event ids ingest answered 2xx for
	answers  []ingestAnswer
	updates  int // consent changes ingest accepted

	stop, done chan struct{}
	err        error
}

type ingestAnswer struct {
	at     time.Time
	status int // 0: no answer (connection refused or reset, timeout)
}

const (
	clusterChunk  = 5 // events per request
	clusterUsers  = 300
	clusterPeriod = 100 * time.Millisecond // between requests
)

func startClusterTraffic(t *testing.T, p *pipeline) *clusterTraffic {
	tr := &clusterTraffic{
		client: &http.Client{Timeout: 30 * time.Second}, url: p.ingestURL,
		accepted: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	seed := uint64(time.Now().UnixNano())
	// More than the schedule can send: the test stops the traffic when its faults are over.
	events := sample.Events(seed, 30_000, clusterUsers, time.Now().Add(-time.Hour))
	rng := rand.New(rand.NewPCG(seed, 3))
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(clusterPeriod)
		defer tick.Stop()
		for i := 0; i < len(events); i += clusterChunk {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			if err := tr.sendEvents(events[i:min(i+clusterChunk, len(events))], tick); err != nil {
				tr.err = err
				return
			}
			// Every 10th request, a user withdraws (mostly) or grants marketing or analytics,
			// so the processor's consent state moves while the faults happen.
			if (i/clusterChunk)%10 == 9 {
				e := events[rng.IntN(i+1)]
				body := map[string]any{"consent": map[string]bool{[]string{"analytics", "marketing"}[rng.IntN(2)]: rng.IntN(3) == 0}}
				userField(body, e)
				if err := tr.post("/v1/consent", body, false, tick); err != nil {
					tr.err = err
					return
				}
				tr.mu.Lock()
				tr.updates++
				tr.mu.Unlock()
			}
		}
		tr.err = fmt.Errorf("the traffic ran out of events before the test stopped it")
	}()
	t.Cleanup(func() { tr.finish() })
	return tr
}

// sendEvents posts a chunk, GPC events in their own request with the Sec-GPC header.
func (tr *clusterTraffic) sendEvents(chunk []sample.Event, tick *time.Ticker) error {
	for _, gpc := range []bool{false, true} {
		var batch []sample.Event
		for _, e := range chunk {
			if e.GPC == gpc {
				batch = append(batch, e)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := tr.post("/v1/events", map[string]any{"batch": batch}, gpc, tick); err != nil {
			return err
		}
		tr.mu.Lock()
		for _, e := range batch {
			tr.accepted[e.EventID] = true
		}
		tr.mu.Unlock()
	}
	return nil
}

// post sends body until ingest answers 2xx, once per tick. A 4xx is the test's own fault and
// ends the traffic; anything else is what a fault may cause and is retried.
func (tr *clusterTraffic) post(path string, body any, gpc bool, tick *time.Ticker) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	for {
		status := tr.postOnce(path, b, gpc)
		tr.mu.Lock()
		tr.answers = append(tr.answers, ingestAnswer{at: time.Now(), status: status})
		tr.mu.Unlock()
		switch {
		case status >= 200 && status < 300:
			return nil
		case status >= 400 && status < 500:
			return fmt.Errorf("%s: HTTP %d", path, status)
		}
		select {
		case <-tr.stop:
			return fmt.Errorf("%s: stopped while ingest was not accepting (last answer %d)", path, status)
		case <-tick.C:
		}
	}
}

func (tr *clusterTraffic) postOnce(path string, body []byte, gpc bool) int {
	req, err := http.NewRequest(http.MethodPost, tr.url+path, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+writeKey)
	req.Header.Set("Content-Type", "application/json")
	if gpc {
		req.Header.Set("Sec-GPC", "1")
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (tr *clusterTraffic) acceptedCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.accepted)
}

// waitMore waits until ingest has accepted n more events than when called: the traffic goes on
// through whatever fault is in place.
func (tr *clusterTraffic) waitMore(t *testing.T, n int, what string) {
	t.Helper()
	want := tr.acceptedCount() + n
	require.Eventually(t, func() bool { return tr.acceptedCount() >= want || tr.finished() },
		4*time.Minute, 100*time.Millisecond, "ingest did not accept %d more events %s", n, what)
	require.NoError(t, tr.err)
}

func (tr *clusterTraffic) finished() bool {
	select {
	case <-tr.done:
		return true
	default:
		return false
	}
}

// finish stops the traffic after its current request and waits for it.
func (tr *clusterTraffic) finish() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// faultFigures is how ingest answered from a fault's start to its end.
type faultFigures struct {
	requests, ok, unavailable, otherStatus, noAnswer int
	longestWithout2xx                                time.Duration
}

func (f faultFigures) String() string {
	return fmt.Sprintf("requests=%d 2xx=%d 503=%d other_status=%d no_answer=%d longest_without_2xx=%s",
		f.requests, f.ok, f.unavailable, f.otherStatus, f.noAnswer, f.longestWithout2xx.Round(time.Millisecond))
}

// figures counts the answers in [from, to] and finds the longest time without a 2xx that
// overlaps the window: from the last 2xx before `from` (or `from`) to the first 2xx after it.
func (tr *clusterTraffic) figures(from, to time.Time) faultFigures {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var f faultFigures
	last := from
	for _, a := range tr.answers {
		ok := a.status >= 200 && a.status < 300
		if a.at.Before(from) {
			if ok {
				last = a.at
			}
			continue
		}
		if ok {
			f.longestWithout2xx = max(f.longestWithout2xx, a.at.Sub(last))
			last = a.at
		}
		if a.at.After(to) {
			if ok {
				break
			}
			continue
		}
		f.requests++
		switch {
		case ok:
			f.ok++
		case a.status == http.StatusServiceUnavailable:
			f.unavailable++
		case a.status == 0:
			f.noAnswer++
		default:
			f.otherStatus++
		}
	}
	return f
}
