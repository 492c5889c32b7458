package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

const (
	crashEvents = 20_000
	crashUsers  = 400
	crashChunk  = 200 // events per ingest request
)

// TestProcessorSurvivesKill9 kills the consent processor with SIGKILL at random moments while a
// stream of events and consent changes flows, restarting it each time, then proves from the
// topics and ClickHouse that every event got exactly one decision per destination and that no
// filtered record contradicts the consent state at its position in the log.
func TestProcessorSurvivesKill9(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills processes against the real broker")
	}
	p := newPipeline(t)
	p.spawn("ingest", nil, "ingest")
	p.waitReady()
	p.spawn("audit", nil, "audit")
	proc := p.spawn("processor", []string{"TOLLGATE_PROCESSOR_INSTANCE=a"}, "process")

	stream := startStream(t, p)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for !stream.finished() {
		select {
		case <-time.After(time.Duration(500+rng.IntN(2500)) * time.Millisecond):
		case <-stream.done:
		}
		proc.Kill9()
		proc.start()
	}
	require.NoError(t, stream.wait())
	t.Logf("processor killed %d times while %d events and %d consent changes flowed", proc.killCount(), stream.events, stream.updates)
	require.GreaterOrEqual(t, proc.killCount(), 3, "the stream must outlast several kills")
	verifyExactlyOnce(t, p, stream)
}

// TestProcessorGroupRebalances runs two processors in one group, kills one for good mid-stream
// and adds a third: the partitions move between them without a gap, a duplicate or a forward the
// consent state forbids.
func TestProcessorGroupRebalances(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills processes against the real broker")
	}
	p := newPipeline(t)
	p.spawn("ingest", nil, "ingest")
	p.waitReady()
	p.spawn("audit", nil, "audit")
	a := p.spawn("processor-a", []string{"TOLLGATE_PROCESSOR_INSTANCE=a"}, "process")
	p.spawn("processor-b", []string{"TOLLGATE_PROCESSOR_INSTANCE=b"}, "process")

	stream := startStream(t, p)
	stream.waitProgress(crashEvents / 3)
	a.Kill9()
	stream.waitProgress(2 * crashEvents / 3)
	p.spawn("processor-c", []string{"TOLLGATE_PROCESSOR_INSTANCE=c"}, "process")
	require.NoError(t, stream.wait())
	verifyExactlyOnce(t, p, stream)
}

// verifyExactlyOnce waits until the processor group has consumed the whole raw topic, then checks
// the decisions and filtered topics against the raw log, and ClickHouse against the topics.
func verifyExactlyOnce(t *testing.T, p *pipeline, stream *stream) {
	cl, err := kafka.NewClient(p.cfg, zap.NewNop())
	require.NoError(t, err)
	defer cl.Close()
	rawEnds := waitConsumed(t, cl, p.cfg)

	oracle := readRawLog(t, p.cfg, rawEnds)
	require.Equal(t, stream.events, len(oracle.events), "every event ingest accepted is in the raw topic")
	require.Equal(t, stream.resent, oracle.resends, "every resend ingest accepted is in the raw topic")
	require.Positive(t, oracle.resends)

	decided, _ := checkDecisionTopics(t, cl, p, oracle)
	// Each absorbed resend is one duplicates record, however often the processor died meanwhile.
	dups := 0
	readTopic(t, cl, p.cfg, config.TopicDuplicates, func(*kgo.Record) { dups++ })
	require.Equal(t, oracle.resends, dups, "one duplicates record per resend")
	checkAuditMatches(t, p.openDB(), p.db, decided, oracle.erasedUsers())
	t.Logf("verified %d events, %d resends, %d decisions, %d lookahead blocks", len(oracle.events), oracle.resends, len(decided), oracle.lookaheadBlocks(decided))
}

// checkDecisionTopics reads the decisions and filtered topics and checks them against the raw log:
// one decision per event and destination, as the consent state at the event's position says (or
// blocked by a later restriction the processor applied ahead), and one filtered record per
// forward decision. It returns the decisions by event_id/destination and each destination's
// filtered records by event id.
func checkDecisionTopics(t *testing.T, cl *kgo.Client, p *pipeline, oracle *logOracle) (map[string]schemas.Decision, map[string]map[string]schemas.FilteredEvent) {
	decided := map[string]schemas.Decision{} // event_id/destination
	readTopic(t, cl, p.cfg, config.TopicDecisions, func(r *kgo.Record) {
		require.True(t, schemas.DecisionSets.Is(r.Value), "one decision set per event")
		ds, err := schemas.DecodeDecisions(nil, r.Value)
		require.NoError(t, err)
		for _, d := range ds {
			key := d.EventID + "/" + d.Destination
			_, dup := decided[key] // not require.NotContains: it scans the map, quadratic over 60,000 decisions
			require.False(t, dup, "duplicate decision %s in the decisions topic", key)
			decided[key] = d
		}
	})
	names := p.cfg.Policy.Names
	require.Equal(t, len(oracle.events)*len(names), len(decided), "one decision per event and destination, no gaps")

	forwarded := map[string]int{}
	for _, ev := range oracle.events {
		for _, dest := range names {
			got, ok := decided[ev.id+"/"+dest]
			require.True(t, ok, "no decision for %s/%s", ev.id, dest)
			want := ev.expect[dest]
			if got.Outcome != want[0] || got.Reason != want[1] {
				require.True(t, oracle.restrictedLater(ev, dest, got.Reason),
					"%s/%s decided %s/%s, the consent state at its log position says %s/%s, and no later withdrawal covers it",
					ev.id, dest, got.Outcome, got.Reason, want[0], want[1])
				require.Equal(t, consent.Blocked, got.Outcome)
			}
			if got.Outcome == consent.Forwarded {
				forwarded[dest]++
			}
		}
	}
	filtered := map[string]map[string]schemas.FilteredEvent{}
	for _, dest := range names {
		seen := map[string]schemas.FilteredEvent{}
		readTopic(t, cl, p.cfg, config.DestTopic(dest), func(r *kgo.Record) {
			f, err := schemas.FilteredEvents.Decode(r.Value)
			require.NoError(t, err)
			_, dup := seen[f.EventID]
			require.False(t, dup, "%s received event %s twice", dest, f.EventID)
			seen[f.EventID] = f
			require.Equal(t, consent.Forwarded, decided[f.EventID+"/"+dest].Outcome, "filtered record %s/%s without a forward decision", f.EventID, dest)
		})
		require.Equal(t, forwarded[dest], len(seen), "%s: one filtered record per forward decision", dest)
		filtered[dest] = seen
	}
	return decided, filtered
}

// checkAuditMatches: ClickHouse holds exactly the decisions of the topic, once each in the
// documented query form, except those the audit writer erased: an erased user keeps only the
// decisions that enforced the erasure (reason erased).
func checkAuditMatches(t *testing.T, db *audit.DB, database string, decided map[string]schemas.Decision, erased map[string]bool) {
	kept := func(d schemas.Decision) bool { return !erased[d.UserKey] || d.Reason == consent.ReasonErased }
	want := 0
	for _, d := range decided {
		if kept(d) {
			want++
		}
	}
	query := func() map[string][2]string {
		rows, err := db.Query(context.Background(), "SELECT event_id, destination, outcome, reason FROM "+database+".decisions FINAL WHERE run_id = ''")
		require.NoError(t, err)
		defer rows.Close()
		got := map[string][2]string{}
		for rows.Next() {
			var id, dest, outcome, reason string
			require.NoError(t, rows.Scan(&id, &dest, &outcome, &reason))
			_, dup := got[id+"/"+dest]
			require.False(t, dup, "audit row %s/%s twice under FINAL", id, dest)
			got[id+"/"+dest] = [2]string{outcome, reason}
		}
		require.NoError(t, rows.Err())
		return got
	}
	// Erasures are mutations that finish in the background: poll until the rows settle.
	var got map[string][2]string
	require.Eventually(t, func() bool {
		got = query()
		if len(got) != want {
			return false
		}
		for key := range got {
			if d, ok := decided[key]; !ok || !kept(d) {
				return false
			}
		}
		return true
	}, 2*time.Minute, 250*time.Millisecond, "audit rows never settled at %d", want)
	for key, row := range got {
		d := decided[key]
		require.Equal(t, [2]string{d.Outcome, d.Reason}, row, key)
	}
}

// waitConsumed waits until the processor group's committed offsets reach the raw topic's end,
// and returns those ends.
func waitConsumed(t *testing.T, cl *kgo.Client, cfg *config.Config) map[int32]int64 {
	ctx := context.Background()
	raw := cfg.Topic(config.TopicRaw)
	ends, err := kafka.EndOffsets(ctx, cl, raw)
	require.NoError(t, err)
	adm := kadm.NewClient(cl)
	require.Eventually(t, func() bool {
		committed, err := adm.FetchOffsetsForTopics(ctx, cfg.ProcessorGroup(), raw)
		if err != nil {
			return false
		}
		for part, end := range ends {
			o, ok := committed.Lookup(raw, part)
			if !ok || o.At < end {
				return false
			}
		}
		return true
	}, 3*time.Minute, 200*time.Millisecond, "the processor group never consumed the raw topic")
	return ends
}

// readTopic reads a topic's committed records. It first waits until no transaction is open on it:
// a processor killed mid-transaction leaves one open until the broker times it out, and
// read_committed readers see nothing past it until then.
func readTopic(t *testing.T, cl *kgo.Client, cfg *config.Config, name string, fn func(*kgo.Record)) {
	ctx := context.Background()
	topic := cfg.Topic(name)
	adm := kadm.NewClient(cl)
	var ends map[int32]int64
	require.Eventually(t, func() bool {
		stable, err1 := adm.ListCommittedOffsets(ctx, topic)
		high, err2 := adm.ListEndOffsets(ctx, topic)
		if err1 != nil || err2 != nil {
			return false
		}
		ends = map[int32]int64{}
		settled := true
		high.Each(func(o kadm.ListedOffset) {
			s, _ := stable.Lookup(topic, o.Partition)
			settled = settled && s.Err == nil && o.Err == nil && s.Offset == o.Offset
			if o.Offset > 0 {
				ends[o.Partition] = o.Offset
			}
		})
		return settled
	}, 2*time.Minute, 200*time.Millisecond, "%s still has an open transaction", topic)
	require.NoError(t, kafka.ReadToEnd(ctx, cfg, zap.NewNop(), topic, ends, fn))
}

// logOracle replays the raw log in partition order with its own consent bookkeeping (latest
// choice per purpose, sticky erasure) and asks the consent engine what each event's decision is
// at its position. The engine's rules are proven against an independent reading of docs/consent.md
// in TestPipelineEndToEnd and its own tests; this test is about what the Kafka plumbing does.
type logOracle struct {
	purposes     map[string]string // destination → purpose, from the policy
	events       []oracleEvent
	restrictions map[string][]oracleRestriction // user → restricting updates, in log order
	// resends are events whose (user key, event id) came earlier in the log: the processor
	// absorbs them (no decision, no filtered record).
	resends int
}

type oracleEvent struct {
	id, user string
	offset   int64
	expect   map[string][2]string // destination → outcome, reason
}

type oracleRestriction struct {
	offset  int64
	refused map[string]bool
	erased  bool
}

func readRawLog(t *testing.T, cfg *config.Config, ends map[int32]int64) *logOracle {
	o := &logOracle{restrictions: map[string][]oracleRestriction{}, purposes: map[string]string{}}
	for name, dest := range cfg.Policy.Destinations {
		o.purposes[name] = dest.Purpose
	}
	states := map[string]*consent.State{}
	seen := map[[2]string]bool{}
	now := time.Now()
	err := kafka.ReadToEnd(context.Background(), cfg, zap.NewNop(), cfg.Topic(config.TopicRaw), ends, func(r *kgo.Record) {
		if schemas.ConsentUpdates.Is(r.Value) {
			u, err := schemas.ConsentUpdates.Decode(r.Value)
			require.NoError(t, err)
			st := states[u.UserKey]
			if st == nil {
				st = &consent.State{Consent: map[string]bool{}}
				states[u.UserKey] = st
			}
			next := &consent.State{Consent: maps.Clone(st.Consent), Erased: st.Erased || u.Erased}
			maps.Copy(next.Consent, u.Consent)
			states[u.UserKey] = next
			refused := map[string]bool{}
			for purpose, v := range u.Consent {
				if !v {
					refused[purpose] = true
				}
			}
			o.restrictions[u.UserKey] = append(o.restrictions[u.UserKey], oracleRestriction{offset: r.Offset, refused: refused, erased: u.Erased})
			return
		}
		ev, err := schemas.Events.Decode(r.Value)
		require.NoError(t, err)
		key := [2]string{ev.UserKey(), ev.EventID}
		if seen[key] {
			o.resends++
			return
		}
		seen[key] = true
		oe := oracleEvent{id: ev.EventID, user: ev.UserKey(), offset: r.Offset, expect: map[string][2]string{}}
		for _, out := range consent.Decide(&ev, states[ev.UserKey()], cfg.Policy, now, "") {
			oe.expect[out.Decision.Destination] = [2]string{out.Decision.Outcome, out.Decision.Reason}
		}
		o.events = append(o.events, oe)
	})
	require.NoError(t, err)
	return o
}

// restrictedLater reports whether a withdrawal or erasure later in the log than the event covers
// the destination with the given reason: the processor may apply those ahead (docs/consent.md).
func (o *logOracle) restrictedLater(ev oracleEvent, dest, reason string) bool {
	purpose := o.purposes[dest]
	for _, r := range o.restrictions[ev.user] {
		if r.offset <= ev.offset {
			continue
		}
		if (reason == consent.ReasonErased && r.erased) || (reason == consent.ReasonWithdrawn && r.refused[purpose]) {
			return true
		}
	}
	return false
}

func (o *logOracle) erasedUsers() map[string]bool {
	out := map[string]bool{}
	for user, rs := range o.restrictions {
		for _, r := range rs {
			out[user] = out[user] || r.erased
		}
	}
	return out
}

func (o *logOracle) lookaheadBlocks(decided map[string]schemas.Decision) int {
	n := 0
	for _, ev := range o.events {
		for dest, want := range ev.expect {
			if d := decided[ev.id+"/"+dest]; d.Reason != want[1] {
				n++
			}
		}
	}
	return n
}

// stream sends crashEvents events in requests of crashChunk, with consent changes (withdrawals,
// grants, a few erasures) between them, at a steady pace so that faults land mid-stream. Every
// fourth request is followed by a resend of an earlier request (same event ids), as a client
// does after a lost answer.
type stream struct {
	done            chan struct{}
	err             error
	events, updates int
	resent          int
	progress        chan int
}

func startStream(t *testing.T, p *pipeline) *stream {
	s := &stream{done: make(chan struct{}), progress: make(chan int, crashEvents/crashChunk)}
	seed := uint64(time.Now().UnixNano())
	events := sample.Events(seed, crashEvents, crashUsers, time.Now().Add(-time.Hour))
	rng := rand.New(rand.NewPCG(seed, 2))
	go func() {
		defer close(s.done)
		defer close(s.progress)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(events); i += crashChunk {
			<-tick.C
			n, err := sample.Send(p.ingestURL, writeKey, events[i:min(i+crashChunk, len(events))])
			s.events += n
			if err == nil && (i/crashChunk)%4 == 3 {
				j := rng.IntN(i/crashChunk+1) * crashChunk
				n, err = sample.Send(p.ingestURL, writeKey, events[j:min(j+crashChunk, len(events))])
				s.resent += n
			}
			if err == nil {
				err = s.changeConsent(p, rng, events, i)
			}
			if err != nil {
				s.err = fmt.Errorf("after %d events: %w", s.events, err)
				return
			}
			s.progress <- s.events
		}
	}()
	return s
}

// changeConsent posts a few consent changes for users of the sample: mostly withdrawals, some
// grants, and every 25th chunk an erasure.
func (s *stream) changeConsent(p *pipeline, rng *rand.Rand, events []sample.Event, chunk int) error {
	for range 5 {
		e := events[rng.IntN(len(events))]
		body := map[string]any{"consent": map[string]bool{[]string{"analytics", "marketing"}[rng.IntN(2)]: rng.IntN(3) == 0}}
		userField(body, e)
		if err := sample.PostJSON(p.ingestURL+"/v1/consent", writeKey, body, false, nil); err != nil {
			return err
		}
		s.updates++
	}
	if (chunk/crashChunk)%25 == 12 {
		body := map[string]any{}
		userField(body, events[rng.IntN(len(events))])
		if err := sample.PostJSON(p.ingestURL+"/v1/erase", writeKey, body, false, nil); err != nil {
			return err
		}
		s.updates++
	}
	return nil
}

func userField(body map[string]any, e sample.Event) {
	if e.UserID != "" {
		body["user_id"] = e.UserID
	} else {
		body["anonymous_id"] = e.AnonymousID
	}
}

func (s *stream) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitProgress blocks until at least n events have been accepted (or the stream ended).
func (s *stream) waitProgress(n int) {
	for sent := range s.progress {
		if sent >= n {
			return
		}
	}
}

func (s *stream) wait() error {
	<-s.done
	return s.err
}
