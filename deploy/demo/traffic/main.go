// Command traffic sends the demo's sample traffic to a tollgate ingest endpoint: events with every
// consent combination, GPC and non-GPC, EU, US-CA and default jurisdictions, some on health pages,
// and a consent withdrawal half-way through. It prints how many events were accepted.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/internal/sample"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "ingest base URL")
	key := flag.String("key", "wk_demo", "write key")
	n := flag.Int("events", 300, "events to send")
	users := flag.Int("users", 40, "distinct users")
	flag.Parse()
	if err := send(*url, *key, *n, *users); err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		os.Exit(1)
	}
}

func send(url, key string, n, users int) error {
	events := sample.Events(uint64(time.Now().Unix()), n, users, time.Now().Add(-time.Minute))
	half := len(events) / 2
	accepted, err := post(url, key, events[:half])
	if err != nil {
		return err
	}
	// User 0 withdraws marketing consent: their later events must not reach meta.
	withdraw := map[string]any{"consent": map[string]bool{"marketing": false}, "notice_version": "v3"}
	if u := events[0]; u.UserID != "" {
		withdraw["user_id"] = u.UserID
	} else {
		withdraw["anonymous_id"] = u.AnonymousID
	}
	if err := postJSON(url+"/v1/consent", key, withdraw, false, nil); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	more, err := post(url, key, events[half:])
	if err != nil {
		return err
	}
	fmt.Printf("traffic: %d events accepted, 1 withdrawal recorded\n", accepted+more)
	return nil
}

// post sends events in batches, GPC ones in requests with the Sec-GPC header.
func post(url, key string, events []sample.Event) (int, error) {
	accepted := 0
	for _, gpc := range []bool{false, true} {
		var batch []sample.Event
		for _, e := range events {
			if e.GPC == gpc {
				batch = append(batch, e)
			}
		}
		for len(batch) > 0 {
			k := min(len(batch), 100)
			var resp struct {
				Accepted int `json:"accepted"`
			}
			if err := postJSON(url+"/v1/events", key, map[string]any{"batch": batch[:k]}, gpc, &resp); err != nil {
				return accepted, err
			}
			accepted += resp.Accepted
			batch = batch[k:]
		}
	}
	return accepted, nil
}

func postJSON(url, key string, body any, gpc bool, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if gpc {
		req.Header.Set("Sec-GPC", "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}
