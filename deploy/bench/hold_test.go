package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/sample"
)

func decodeBatch(t *testing.T, body []byte) []sample.Event {
	t.Helper()
	var b struct{ Batch []sample.Event }
	require.NoError(t, json.Unmarshal(body, &b))
	return b.Batch
}

// The first events are what a hold would hold (opt_in, no choice); the answer carries a choice
// for every purpose for each of the same users, and no id repeats.
func TestLateTrafficFirstEventsThenTheSameUsersChoice(t *testing.T) {
	tr := newLateTraffic("b", 500, false)
	first, answer := decodeBatch(t, tr.first.render(42)), decodeBatch(t, tr.answer.render(42))
	require.Len(t, first, 500)
	require.Len(t, answer, 500)
	ids := map[string]bool{}
	users := map[string]int{}
	for _, e := range first {
		require.Nil(t, e.Consent, e.EventID)
		require.Equal(t, "EU", e.Jurisdiction)
		require.Contains(t, e.UserKey(), "-0000000042-")
		users[e.UserKey()]++
		ids[e.EventID] = true
	}
	require.Len(t, users, 250)
	answered := map[string]bool{}
	for _, e := range answer {
		require.Equal(t, "EU", e.Jurisdiction)
		for _, purpose := range []string{"analytics", "marketing"} {
			_, chose := e.Consent[purpose]
			require.True(t, chose, "%s makes no choice about %s", e.EventID, purpose)
		}
		require.Contains(t, users, e.UserKey(), "the answer is from a user with no first events")
		answered[e.UserKey()] = true
		require.False(t, ids[e.EventID], "id %s repeats", e.EventID)
		ids[e.EventID] = true
	}
	require.Len(t, answered, len(users))
	for id := range ids { // the bench counts the batched phase's decisions by ids in [b, c)
		require.True(t, id >= "b" && id < "c", id)
	}
	require.NotContains(t, string(tr.first.render(43)), "-0000000042-", "each request brings fresh users")
}

// With -choice-first, each first event carries the choice its user's answer brings: the
// decisions a hold makes after the choice, made at once.
func TestChoiceFirstGivesTheFirstEventsTheirUsersAnswer(t *testing.T) {
	tr := newLateTraffic("b", 500, true)
	chose := map[string]map[string]bool{}
	for _, e := range decodeBatch(t, tr.answer.render(7)) {
		chose[e.UserKey()] = e.Consent
	}
	for _, e := range decodeBatch(t, tr.first.render(7)) {
		require.Contains(t, chose, e.UserKey())
		require.Equal(t, chose[e.UserKey()], e.Consent, e.EventID)
	}
	require.Len(t, chose, 250)
}

// The other phases of a late-choice run leave no event without a choice (none would wait out
// the 10-minute window); a plain run keeps the sample's events as they are.
func TestLateChoiceRunsGiveEveryOtherEventAChoice(t *testing.T) {
	for _, e := range decodeBatch(t, options{lateChoice: time.Second}.template("e", 100, true).render(1)) {
		require.NotNil(t, e.Consent, e.EventID)
	}
	var none int
	for _, e := range decodeBatch(t, options{}.template("e", 100, true).render(1)) {
		if e.Consent == nil {
			none++
		}
	}
	require.Positive(t, none)
}

// Every first request that was accepted gets its answer, after it, no sooner than the delay,
// and the loop ends once the answers owed are sent.
func TestClosedLoopLateAnswersEveryFirstRequest(t *testing.T) {
	var mu sync.Mutex
	firstAt, answerAt := map[string]time.Time{}, map[string]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		evs := decodeBatch(t, b)
		now := time.Now()
		// Request 1's first events are refused: not counted, and no answer is owed for them.
		// (The first request, which the loop sends whatever the machine's speed; a later one
		// may not be sent within the loop's 200 ms on a loaded machine.)
		if evs[0].Consent == nil && strings.Contains(evs[0].UserKey(), "-0000000001-") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		if evs[0].Consent == nil {
			firstAt[evs[0].UserKey()] = now
		} else {
			answerAt[evs[0].UserKey()] = now
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	var seq atomic.Int64
	const after = 30 * time.Millisecond
	acc, unanswered, st := closedLoopLate(context.Background(), newPoster(srv.URL, "k", 2), newLateTraffic("b", 4, false), 4, 2, 200*time.Millisecond, after, &seq)
	require.Zero(t, unanswered)
	require.Equal(t, 1, st.errors())
	require.NotEmpty(t, firstAt)
	require.Equal(t, int64(4*(len(firstAt)+len(answerAt))), acc)
	require.Len(t, answerAt, len(firstAt), "a first request was left without its answer")
	for user, f := range firstAt {
		require.GreaterOrEqual(t, answerAt[user].Sub(f), after, user)
	}
}

// The bench, not the policy file, decides whether a run holds: the demo policy's own hold is
// removed, and -hold's is the 10-minute window.
func TestSetHold(t *testing.T) {
	b, err := os.ReadFile("../demo/policy.yaml")
	require.NoError(t, err)
	for _, pol := range []string{string(b), string(b) + "hold:\n  window: 30s\n  max_events_per_user: 5\n", "hold: {window: 2m}\n" + string(b)} {
		off, err := policy.Parse("off.yaml", []byte(setHold(pol, false)))
		require.NoError(t, err)
		require.False(t, off.Holds())
		on, err := policy.Parse("on.yaml", []byte(setHold(pol, true)))
		require.NoError(t, err)
		require.True(t, on.Holds())
		require.Equal(t, 10*time.Minute, on.Hold.Window)
		require.Equal(t, 1, strings.Count(setHold(pol, true), "hold:"))
	}
}
