package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

// traffic sends sample events (every consent combination, GPC, jurisdictions, health pages) in
// batches of 50, rate events per second, retrying each request until ingest answers 202: an
// event counts as accepted only then, which is the promise the invariants hold ingest to. Like
// an SDK whose answer got lost, it also sends every twentieth accepted batch a second time, so
// the run holds resends that must reach no vendor twice.
type traffic struct {
	url    string
	rate   int
	client *http.Client

	mu       sync.Mutex
	accepted map[string]bool
	retried  int
	resent   int // events sent again after their batch was accepted (a lost answer)
	batches  int
}

func newTraffic(base string, rate int) *traffic {
	return &traffic{url: base + "/v1/events", rate: rate, client: &http.Client{Timeout: 15 * time.Second}, accepted: map[string]bool{}}
}

func (t *traffic) run(ctx context.Context) {
	const per = 50
	tick := time.NewTicker(time.Second * per / time.Duration(t.rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for n := uint64(1); ; n++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		evs := sample.Events(n, per, 20, time.Now())
		wg.Add(1)
		go func() { defer wg.Done(); t.send(evs) }()
	}
}

// send posts one batch (GPC events in their own request, with the Sec-GPC header) until it is
// accepted, for up to three minutes (the longest outage of the run is shorter).
func (t *traffic) send(evs []sample.Event) {
	for _, gpc := range []bool{false, true} {
		var part []sample.Event
		for _, e := range evs {
			if e.GPC == gpc {
				part = append(part, e)
			}
		}
		if len(part) == 0 {
			continue
		}
		body, _ := json.Marshal(map[string]any{"batch": part})
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if t.post(body, gpc) {
				t.mu.Lock()
				for _, e := range part {
					t.accepted[e.EventID] = true
				}
				t.batches++
				again := t.batches%20 == 0
				t.mu.Unlock()
				if again && t.post(body, gpc) {
					t.mu.Lock()
					t.resent += len(part)
					t.mu.Unlock()
				}
				break
			}
			t.mu.Lock()
			t.retried++
			t.mu.Unlock()
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func (t *traffic) post(body []byte, gpc bool) bool {
	req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer wk_chaos")
	req.Header.Set("Content-Type", "application/json")
	if gpc {
		req.Header.Set("Sec-GPC", "1")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Accepted int `json:"accepted"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode == http.StatusAccepted
}

func (t *traffic) acceptedIDs() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted
}

func (t *traffic) resends() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.resent
}

func (t *traffic) retries() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retried
}
