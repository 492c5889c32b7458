package sample

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// Send posts events to an ingest's /v1/events in batches of 100, GPC events in requests carrying
// the Sec-GPC header. It returns how many events ingest accepted.
func Send(baseURL, key string, events []Event) (int, error) {
	accepted := 0
	for _, gpc := range []bool{false, true} {
		var batch []Event
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
			if err := PostJSON(baseURL+"/v1/events", key, map[string]any{"batch": batch[:k]}, gpc, &resp); err != nil {
				return accepted, err
			}
			accepted += resp.Accepted
			batch = batch[k:]
		}
	}
	return accepted, nil
}

// Withdraw records, through /v1/consent, that the event's user refuses a purpose.
func Withdraw(baseURL, key string, e Event, purpose string) error {
	body := map[string]any{"consent": map[string]bool{purpose: false}, "notice_version": "v3"}
	if e.UserID != "" {
		body["user_id"] = e.UserID
	} else {
		body["anonymous_id"] = e.AnonymousID
	}
	return PostJSON(baseURL+"/v1/consent", key, body, false, nil)
}

// PostJSON posts body with a bearer write key and expects 202; out, if set, gets the answer.
func PostJSON(url, key string, body any, gpc bool, out any) error {
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
