package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The banner scenario sends each visitor's five events with no choice, then the answers (none
// from the visitor who never answers), then the accepting visitor's purchase with its choice.
func TestBannerSendsEventsBeforeTheChoice(t *testing.T) {
	var mu sync.Mutex
	var log []string // "<visitor> <event|consent> <has a choice>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Event        string          `json:"event"`
			AnonymousID  string          `json:"anonymous_id"`
			Jurisdiction string          `json:"jurisdiction"`
			Consent      map[string]bool `json:"consent"`
		}
		b, _ := io.ReadAll(r.Body)
		assert.NoError(t, json.Unmarshal(b, &body)) // not require: this is the server's goroutine
		kind := body.Event
		if r.URL.Path == "/v1/consent" {
			kind = "consent"
		} else {
			assert.Equal(t, "EU", body.Jurisdiction)
		}
		mu.Lock()
		log = append(log, body.AnonymousID+" "+kind+" "+map[bool]string{true: "choice", false: "none"}[body.Consent != nil])
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	n, err := banner(srv.URL, "wk", "v", 0, 0)
	require.NoError(t, err)
	require.Equal(t, 16, n)
	require.Len(t, log, 16+2)
	for _, l := range log[:15] {
		require.Regexp(t, `^v-(accepts|rejects|never-answers) (page_view|add_to_cart) none$`, l)
	}
	require.Equal(t, []string{"v-accepts consent choice", "v-rejects consent choice", "v-accepts purchase choice"}, log[15:])
}
