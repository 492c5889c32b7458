package enforce

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

// newTestProcessor is a processor over the demo policy with the stores of partitions 0..parts-1
// open and no lookahead follower.
func newTestProcessor(tb testing.TB, parts int32) *Processor {
	pol, err := policy.Load(filepath.Join("..", "..", "deploy", "demo", "policy.yaml"))
	require.NoError(tb, err)
	pol.Hold = nil // the demo policy holds events before the choice; the tests of the hold set their own
	cfg := &config.Config{Policy: pol}
	cfg.Kafka.TopicPrefix = "t."
	cfg.Dedup.Window = 7 * 24 * time.Hour
	p := newProcessor(cfg, zap.NewNop(), newStateStore(tb.TempDir(), cfg.Dedup.Window))
	p.ahead = &lookahead{book: p.state.book, pending: map[int32]map[string][]restriction{}}
	for part := range parts {
		_, err = p.state.open(part)
		require.NoError(tb, err)
	}
	tb.Cleanup(func() { _ = p.state.closeAll() })
	return p
}

// testProcessor is newTestProcessor with partition 0, deciding at a fixed time.
func testProcessor(t *testing.T) (*Processor, *config.Config, time.Time) {
	p := newTestProcessor(t, 1)
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	return p, p.cfg, now
}

// rawEvents are the sample events (every consent combination) as raw records of partition 0.
func rawEvents(t *testing.T, n int) ([]*kgo.Record, []*schemas.Event) {
	var recs []*kgo.Record
	var evs []*schemas.Event
	for i, s := range sample.Events(3, n, n, time.Now()) {
		body, err := json.Marshal(s)
		require.NoError(t, err)
		ev, err := ingest.DecodeEvent(body, time.Now())
		require.NoError(t, err)
		v, err := schemas.Events.Encode(ev)
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Topic: "t.events.raw", Partition: 0, Offset: int64(i), Key: []byte(ev.UserKey()), Value: v})
		evs = append(evs, ev)
	}
	return recs, evs
}

// TestEventWritesOneDecisionRecord: an event is one record on the decisions topic, whatever the
// number of destinations, and it reads back as exactly the engine's decision per destination; a
// forwarded destination gets its filtered event; a resend writes no decision at all.
func TestEventWritesOneDecisionRecord(t *testing.T) {
	p, cfg, now := testProcessor(t)
	recs, evs := rawEvents(t, 40)
	batch := p.state.begin()
	p.tally.reset()
	forwardedSeen := 0
	for i, r := range recs {
		outs, err := p.handle(r, batch)
		require.NoError(t, err)
		var decisions []schemas.Decision
		filtered := map[string]bool{}
		for _, o := range outs {
			switch o.Topic {
			case cfg.Topic(config.TopicDecisions):
				require.True(t, schemas.DecisionSets.Is(o.Value), "a decision set, not a per-destination record")
				require.Empty(t, decisions, "one decisions record per event")
				decisions, err = schemas.DecodeDecisions(nil, o.Value)
				require.NoError(t, err)
				require.Equal(t, []byte(evs[i].UserKey()), o.Key)
			case cfg.Topic(config.TopicDedupIDs):
			default:
				f, err := schemas.FilteredEvents.Decode(o.Value)
				require.NoError(t, err)
				require.Equal(t, cfg.Topic(config.DestTopic(f.Destination)), o.Topic)
				filtered[f.Destination] = true
			}
		}
		want := consent.Decide(evs[i], nil, cfg.Policy, now, "")
		require.Len(t, decisions, len(cfg.Policy.Names))
		for j, o := range want {
			require.Equal(t, o.Decision, decisions[j])
			require.Equal(t, o.Filtered != nil, filtered[o.Decision.Destination], "%s/%s", o.Decision.EventID, o.Decision.Destination)
			if o.Filtered != nil {
				forwardedSeen++
			}
		}
	}
	require.Positive(t, forwardedSeen)

	outs, err := p.handle(recs[0], batch) // the same event again: a resend
	require.NoError(t, err)
	for _, o := range outs {
		require.NotEqual(t, cfg.Topic(config.TopicDecisions), o.Topic, "a resend gets no second decision")
	}
}

// TestDecisionRecordKeepsDecisionsTheSetRefuses: decisions that do not share their event's
// fields (the engine never makes them) are written as per-destination records, not lost.
func TestDecisionRecordKeepsDecisionsTheSetRefuses(t *testing.T) {
	a := schemas.Decision{DecisionID: "a", EventID: "e1", Destination: "ga4", FieldsSent: []string{}, FieldsStripped: []string{}}
	b := schemas.Decision{DecisionID: "b", EventID: "e2", Destination: "meta", FieldsSent: []string{}, FieldsStripped: []string{}}
	r := newDecisionRecord("t.audit.decisions", []byte("u"), 2)
	r.add(&a)
	r.add(&b)
	recs := r.appendTo(nil)
	require.Len(t, recs, 2)
	var got []schemas.Decision
	for _, rec := range recs {
		var err error
		got, err = schemas.DecodeDecisions(got, rec.Value)
		require.NoError(t, err)
	}
	require.Equal(t, []schemas.Decision{a, b}, got)
	require.Empty(t, newDecisionRecord("t", nil, 0).appendTo(nil), "no decision, no record")
}

// TestReplayWritesOneDecisionRecord: a replayed event is one decision set too, holding only the
// destination asked for, with the run's id and the decision ids the run id gives.
func TestReplayWritesOneDecisionRecord(t *testing.T) {
	_, cfg, _ := testProcessor(t)
	store := newStateStore(t.TempDir(), cfg.Dedup.Window)
	_, err := store.open(0)
	require.NoError(t, err)
	defer store.closeAll()
	recs, evs := rawEvents(t, 5)
	for _, dest := range []string{"", "meta"} {
		res := ReplayResult{RunID: "run-1"}
		for i, r := range recs {
			out, err := replayRecord(cfg, r, store, ReplayOptions{Destination: dest}, &res)
			require.NoError(t, err)
			require.Len(t, out, 1)
			ds, err := schemas.DecodeDecisions(nil, out[0].Value)
			require.NoError(t, err)
			want := len(cfg.Policy.Names)
			if dest != "" {
				want = 1
			}
			require.Len(t, ds, want)
			for _, d := range ds {
				require.Equal(t, "run-1", d.RunID)
				require.Equal(t, evs[i].EventID, d.EventID)
				require.Equal(t, consent.DecisionID(d.EventID, d.Destination, "run-1"), d.DecisionID)
				if dest != "" {
					require.Equal(t, dest, d.Destination)
				}
			}
		}
	}
}
