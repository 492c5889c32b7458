package enforce

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// holdProcessor is testProcessor under the demo policy with a hold of a minute and a cap of
// three, and a clock the test moves.
func holdProcessor(t *testing.T) (*Processor, *time.Time) {
	p, cfg, now := testProcessor(t)
	cfg.Policy.Hold = &policy.Hold{Window: time.Minute, MaxEventsPerUser: 3}
	clock := now
	p.now = func() time.Time { return clock }
	return p, &clock
}

// holdRun feeds records through handle in one committed batch (and the window's timer when
// tick) and returns what it produced, in order.
type produced struct {
	decisions []schemas.Decision
	filtered  map[string][]string // destination → event ids, in order
	held      []*kgo.Record       // held-events changelog records
}

func holdRun(t *testing.T, p *Processor, tick bool, recs ...*kgo.Record) produced {
	t.Helper()
	batch := p.state.begin()
	defer p.release(batch)
	p.tally.reset()
	var outs []*kgo.Record
	for _, r := range recs {
		o, err := p.handle(r, batch)
		require.NoError(t, err)
		outs = append(outs, o...)
	}
	due, err := p.releaseDue(batch, tick, nil)
	require.NoError(t, err)
	outs = append(outs, due...)
	outs = append(outs, batch.heldChangelog(p.topics.held)...)
	require.NoError(t, p.state.commit(batch))
	got := produced{filtered: map[string][]string{}}
	for _, o := range outs {
		switch o.Topic {
		case p.cfg.Topic(config.TopicDecisions):
			ds, err := schemas.DecodeDecisions(nil, o.Value)
			require.NoError(t, err)
			got.decisions = append(got.decisions, ds...)
		case p.topics.held:
			got.held = append(got.held, o)
		case p.topics.state, p.topics.dedupIDs:
		default:
			f, err := schemas.FilteredEvents.Decode(o.Value)
			require.NoError(t, err)
			got.filtered[f.Destination] = append(got.filtered[f.Destination], f.EventID)
		}
	}
	return got
}

var holdOffset int64

// holdEvent is a raw record of an EU event of user with no choice (consent nil) or the given one.
func holdEvent(t *testing.T, user, id string, choice map[string]bool) *kgo.Record {
	t.Helper()
	ev := &schemas.Event{EventID: id, Event: "page", UserID: user, Jurisdiction: "EU", Consent: choice, TimestampMs: 1,
		Context: map[string]string{"page_url": `"https://shop.example/"`}, Properties: map[string]string{"email": `"a@example.com"`}}
	holdOffset++
	return &kgo.Record{Topic: "t.events.raw", Partition: 0, Offset: holdOffset, Key: []byte(user), Value: schemas.Events.MustEncode(ev)}
}

func consentRecord(t *testing.T, user string, choice map[string]bool, erased bool) *kgo.Record {
	t.Helper()
	u := &schemas.ConsentUpdate{UserKey: user, Consent: choice, Erased: erased, TimestampMs: 1}
	holdOffset++
	return &kgo.Record{Topic: "t.events.raw", Partition: 0, Offset: holdOffset, Key: []byte(user), Value: schemas.ConsentUpdates.MustEncode(u)}
}

func decisionsOf(ds []schemas.Decision, dest string) []schemas.Decision {
	var out []schemas.Decision
	for _, d := range ds {
		if d.Destination == dest {
			out = append(out, d)
		}
	}
	return out
}

// Five events before the choice, then an event that grants: the five reach ga4 and meta in
// order, before the granting event, with held_ms > 0; the necessary destination got them at
// once, never held.
func TestHoldReleasedByLaterEventInOrder(t *testing.T) {
	p, clock := holdProcessor(t)
	p.cfg.Policy.Hold.MaxEventsPerUser = 100
	var first []*kgo.Record
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		first = append(first, holdEvent(t, "u1", id, nil))
	}
	got := holdRun(t, p, false, first...)
	require.Len(t, decisionsOf(got.decisions, "ops"), 5, "necessary is never held")
	require.Empty(t, decisionsOf(got.decisions, "ga4"), "held, not blocked")
	require.Empty(t, decisionsOf(got.decisions, "meta"))
	require.Equal(t, []string{"e1", "e2", "e3", "e4", "e5"}, got.filtered["ops"])
	require.Len(t, got.held, 1, "one changelog record per user and transaction")
	h, err := schemas.HeldEventsCodec.Decode(got.held[0].Value)
	require.NoError(t, err)
	require.Len(t, h.Events, 5)
	require.Equal(t, []string{"ga4", "meta"}, h.Events[0].Destinations)
	require.NotContains(t, string(got.held[0].Value), "a@example.com", "the changelog holds offsets, never fields")

	*clock = clock.Add(1200 * time.Millisecond)
	got = holdRun(t, p, false, holdEvent(t, "u1", "e6", map[string]bool{"analytics": true, "marketing": true}))
	require.Equal(t, []string{"e1", "e2", "e3", "e4", "e5", "e6"}, got.filtered["ga4"])
	require.Equal(t, []string{"e1", "e2", "e3", "e4", "e5", "e6"}, got.filtered["meta"])
	for i, d := range decisionsOf(got.decisions, "meta") {
		require.Equal(t, "forwarded", d.Outcome, d.EventID)
		if i < 5 {
			require.Equal(t, int64(1200), d.HeldMs, d.EventID)
		} else {
			require.Zero(t, d.HeldMs, "the granting event was not held")
		}
	}
	require.Len(t, got.held, 1)
	require.Nil(t, got.held[0].Value, "a tombstone: nothing held any more")
	require.Zero(t, p.state.holds.held())
}

// Held and released by one batch (the choice right behind the first events): decided as ever,
// and nothing written for the hold, neither a changelog record nor the store's list or copy.
func TestHoldReleasedInItsOwnBatchWritesNothing(t *testing.T) {
	p, _ := holdProcessor(t)
	got := holdRun(t, p, false, holdEvent(t, "u9", "f1", nil), holdEvent(t, "u9", "f2", nil),
		holdEvent(t, "u9", "f3", map[string]bool{"analytics": true, "marketing": true}))
	require.Equal(t, []string{"f1", "f2", "f3"}, got.filtered["ga4"])
	require.Equal(t, []string{"f1", "f2", "f3"}, got.filtered["meta"])
	require.Empty(t, got.held, "no changelog record: the user held nothing before or after")
	db := p.state.store(0)
	_, ok, err := db.Held("u9")
	require.NoError(t, err)
	require.False(t, ok)
	for _, r := range []int64{holdOffset - 2, holdOffset - 1} {
		_, ok, err := db.Body(r)
		require.NoError(t, err)
		require.False(t, ok, "no copy of offset %d", r)
	}

	// A list committed before is still removed with a tombstone when released.
	holdRun(t, p, false, holdEvent(t, "u9", "f4", nil))
	got = holdRun(t, p, false, holdEvent(t, "u9", "f5", map[string]bool{"analytics": true, "marketing": true}))
	require.Len(t, got.held, 1)
	require.Nil(t, got.held[0].Value)
}

// A user who never answers: after the window, the held events are blocked no_consent, by the
// timer alone (no new traffic).
func TestHoldWindowBlocksWithoutChoice(t *testing.T) {
	p, clock := holdProcessor(t)
	holdRun(t, p, false, holdEvent(t, "u2", "a", nil), holdEvent(t, "u2", "b", nil))
	*clock = clock.Add(59 * time.Second)
	got := holdRun(t, p, true)
	require.Empty(t, got.decisions, "inside the window")
	*clock = clock.Add(time.Second)
	got = holdRun(t, p, true)
	require.Len(t, got.decisions, 4)
	for _, d := range got.decisions {
		require.Equal(t, "blocked", d.Outcome)
		require.Equal(t, "no_consent", d.Reason)
		require.Equal(t, int64(60_000), d.HeldMs)
	}
	require.Empty(t, got.filtered)
	require.Zero(t, p.state.holds.held())
}

// A refusal through /v1/consent blocks the held events with the refusal's reason; a grant of
// one purpose releases only that purpose's destinations.
func TestHoldReleasedByConsentUpdate(t *testing.T) {
	p, _ := holdProcessor(t)
	holdRun(t, p, false, holdEvent(t, "u3", "a", nil), holdEvent(t, "u3", "b", nil))
	got := holdRun(t, p, false, consentRecord(t, "u3", map[string]bool{"analytics": true}, false))
	require.Equal(t, []string{"a", "b"}, got.filtered["ga4"])
	for _, d := range decisionsOf(got.decisions, "ga4") {
		require.Equal(t, "consent_api", d.ConsentSource, "the choice came from /v1/consent")
	}
	require.Empty(t, decisionsOf(got.decisions, "meta"), "marketing still waits")
	require.Equal(t, 2, p.state.holds.held())
	got = holdRun(t, p, false, consentRecord(t, "u3", map[string]bool{"marketing": false}, false))
	meta := decisionsOf(got.decisions, "meta")
	require.Len(t, meta, 2)
	for _, d := range meta {
		require.Equal(t, "blocked", d.Outcome)
		require.Equal(t, "withdrawn", d.Reason)
	}
	require.Zero(t, p.state.holds.held())
}

// An erasure decides every held event blocked, erased.
func TestHoldReleasedByErasure(t *testing.T) {
	p, _ := holdProcessor(t)
	holdRun(t, p, false, holdEvent(t, "u4", "a", nil))
	got := holdRun(t, p, false, consentRecord(t, "u4", nil, true))
	require.Len(t, got.decisions, 2)
	for _, d := range got.decisions {
		require.Equal(t, "erased", d.Reason)
	}
	require.Zero(t, p.state.holds.held())
}

// Past the cap the oldest held event is decided at once, as without a hold.
func TestHoldCap(t *testing.T) {
	p, _ := holdProcessor(t)
	got := holdRun(t, p, false, holdEvent(t, "u5", "a", nil), holdEvent(t, "u5", "b", nil), holdEvent(t, "u5", "c", nil),
		holdEvent(t, "u5", "d", nil))
	ga4 := decisionsOf(got.decisions, "ga4")
	require.Len(t, ga4, 1)
	require.Equal(t, "a", ga4[0].EventID)
	require.Equal(t, "no_consent", ga4[0].Reason)
	require.Equal(t, 3, p.state.holds.held())
}

// Without a hold in the policy nothing changes: blocked no_consent at once.
func TestNoHoldBlocksAtOnce(t *testing.T) {
	p, _ := holdProcessor(t)
	p.cfg.Policy.Hold = nil
	got := holdRun(t, p, false, holdEvent(t, "u6", "a", nil))
	require.Len(t, decisionsOf(got.decisions, "ga4"), 1)
	require.Equal(t, "no_consent", decisionsOf(got.decisions, "ga4")[0].Reason)
	require.Zero(t, p.state.holds.held())
}

// The held events survive a restart of the store: the index is rebuilt from it and a release
// reads the kept raw record.
func TestHoldSurvivesReopen(t *testing.T) {
	p, _ := holdProcessor(t)
	holdRun(t, p, false, holdEvent(t, "u7", "a", nil))
	require.NoError(t, p.state.closeAll())
	require.Zero(t, p.state.holds.held())
	db, err := p.state.open(0)
	require.NoError(t, err)
	require.NoError(t, p.state.holds.index(0, db))
	require.Equal(t, 1, p.state.holds.held())
	got := holdRun(t, p, false, consentRecord(t, "u7", map[string]bool{"analytics": true, "marketing": true}, false))
	require.Equal(t, []string{"a"}, got.filtered["ga4"])
	require.Equal(t, []string{"a"}, got.filtered["meta"])
}

// The window's timer releases nothing of a partition the session no longer consumes (revoked
// without the callback: consumedNow), and the held events stay for the partition's owner.
func TestHoldWindowSkipsAPartitionNotConsumed(t *testing.T) {
	p, clock := holdProcessor(t)
	holdRun(t, p, false, holdEvent(t, "u9", "a", nil))
	*clock = clock.Add(time.Minute)
	batch := p.state.begin()
	due, err := p.releaseDue(batch, true, func(int32) bool { return false })
	p.release(batch)
	require.NoError(t, err)
	require.Empty(t, due)
	require.Equal(t, 1, p.state.holds.held(), "still held")
	got := holdRun(t, p, true)
	require.Len(t, got.decisions, 2, "released once the partition is consumed")
}
