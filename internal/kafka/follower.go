package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/backoff"
	"github.com/tollgate-dev/tollgate/internal/config"
)

// Follower reads chosen partitions of one topic as records are committed, hands each data
// record to a callback, and offers a catch-up barrier: CatchUp returns once every record
// committed before the call has been handed over. Three readers rely on that barrier: the
// processor's lookahead over the raw topic (per partition, as the group assigns them), to honour a
// withdrawal acknowledged a moment ago; and the sinks' followed views, the send-time re-check over
// the consent-state topic and the delivery journal (so an event another sink delivered a moment
// ago is not sent again), which follow a whole topic with Start and Sync (below): the start-up
// retry, and a catch-up shared among concurrent requests.
//
// It reads read_committed and keeps control records (transaction markers take offsets too), so
// its position reaches a partition's last stable offset even when the partition ends in a marker.
type Follower struct {
	topic  string
	cl     *kgo.Client
	log    *zap.Logger
	handle func(*kgo.Record)
	flush  func() // see Batched; nil when the handler needs none

	mu      sync.Mutex
	next    map[int32]int64 // next offset to hand over, per followed partition
	changed chan struct{}   // closed and replaced whenever a position advances

	ready        chan struct{} // closed once Start has placed every partition
	synced       sharedSync    // Sync's catch-ups
	syncedOthers sharedSync    // SyncOthers' catch-ups (ownwrites.go)
	own          *OwnWrites    // nil: no record is the owner's own
}

// InSteps are NewFollower options for a view read in steps: a fetch returns once 256 KiB are
// there or 20 ms have passed, whichever comes first. Fetching each write as it lands cost the
// broker more than the write (the ledger: Kafka 100 µs per request, 74 in steps; the lookahead at
// a trickle of single-event requests: a response, a read and a wake-up per produce); under load a
// step fills at once. A Sync waits for at most one step.
func InSteps() []kgo.Opt {
	return []kgo.Opt{kgo.FetchMinBytes(256 << 10), kgo.FetchMaxWait(20 * time.Millisecond)}
}

// NewFollower returns a follower of topic with no partitions yet (Follow adds them). handle is
// called from Run's goroutine, in offset order per partition, for data records only; it must not
// call the follower's methods.
func NewFollower(cfg *config.Config, log *zap.Logger, topic string, handle func(*kgo.Record), opts ...kgo.Opt) (*Follower, error) {
	base := []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
	cl, err := NewClient(cfg, log, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Follower{topic: topic, cl: cl, log: log, handle: handle,
		next: map[int32]int64{}, changed: make(chan struct{}), ready: make(chan struct{})}, nil
}

// Batched makes the follower call flush after each partition's fetched records are handed over
// and before its position advances: a handler that stages records (one store write per fetch
// rather than one per record) writes them there, and CatchUp still returns only once they are
// written. Call it before Run; flush runs on Run's goroutine.
func (f *Follower) Batched(flush func()) { f.flush = flush }

// Client is the follower's Kafka client, for the admin requests of its owner.
func (f *Follower) Client() *kgo.Client { return f.cl }

// Follow starts reading partitions at the given offsets (the next offset to hand over). A
// negative offset means the partition's current start. Partitions already followed start over.
func (f *Follower) Follow(ctx context.Context, starts map[int32]int64) error {
	var listed kadm.ListedOffsets
	for _, o := range starts {
		if o < 0 {
			var err error
			if listed, err = kadm.NewClient(f.cl).ListStartOffsets(ctx, f.topic); err == nil {
				err = listed.Error()
			}
			if err != nil {
				return fmt.Errorf("list start offsets of %s: %w", f.topic, err)
			}
			break
		}
	}
	parts := map[int32]kgo.Offset{}
	f.mu.Lock()
	for p, o := range starts {
		if o < 0 {
			o = 0
			if l, ok := listed.Lookup(f.topic, p); ok {
				o = l.Offset
			}
		}
		f.next[p] = o
		parts[p] = kgo.NewOffset().At(o)
	}
	f.mu.Unlock()
	// franz-go's AddConsumePartitions ignores a partition the client still consumes, and the
	// client would go on from where it was while the position starts over: stuck short of the
	// end once nothing new arrives. Removing it first makes the new start offset hold.
	ids := make([]int32, 0, len(parts))
	for p := range parts {
		ids = append(ids, p)
	}
	f.cl.RemoveConsumePartitions(map[string][]int32{f.topic: ids})
	f.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.topic: parts})
	return nil
}

// Forget stops reading partitions.
func (f *Follower) Forget(parts []int32) {
	f.cl.RemoveConsumePartitions(map[string][]int32{f.topic: parts})
	f.mu.Lock()
	for _, p := range parts {
		delete(f.next, p)
	}
	f.mu.Unlock()
}

// Run reads until ctx ends or the follower is closed.
func (f *Follower) Run(ctx context.Context) {
	for {
		fetches := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			f.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			f.take(fp.Partition, fp.Records)
		})
	}
}

// take hands over one partition's fetched records and advances its position. It holds f.mu
// throughout, so a partition forgotten or started over meanwhile never gets stale records.
func (f *Follower) take(p int32, recs []*kgo.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next, followed := f.next[p]
	if !followed {
		return
	}
	start := next
	for _, r := range recs {
		if r.Offset < next {
			continue // a re-read after Follow started the partition over
		}
		if !r.Attrs.IsControl() {
			f.handle(r)
		}
		next = r.Offset + 1
	}
	if next > start {
		if f.flush != nil {
			f.flush()
		}
		if f.own != nil {
			f.own.forget(p, next)
		}
		f.next[p] = next
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// Position returns the next offset to hand over of a followed partition.
func (f *Follower) Position(p int32) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.next[p]
	return o, ok
}

// CatchUp returns once the follower has handed over every record committed, before the call, to
// the given partitions (every followed partition when parts is nil), or with ctx's error. The
// ends are the partitions' last stable offsets, listed once at the start.
func (f *Follower) CatchUp(ctx context.Context, parts []int32) error {
	return f.catchUp(ctx, parts, false)
}

// catchUp is CatchUp; with others, the records of OwnWrites are not waited for.
func (f *Follower) catchUp(ctx context.Context, parts []int32, others bool) error {
	ends, err := EndOffsets(ctx, f.cl, f.topic)
	if err != nil {
		return err
	}
	for {
		var added <-chan struct{} // taken before the check: an Add after it wakes the wait
		if others {
			added = f.own.next()
		}
		f.mu.Lock()
		behind, ch := f.behindLocked(parts, ends, others), f.changed
		f.mu.Unlock()
		if behind == "" {
			return nil
		}
		select {
		case <-ch:
		case <-added:
		case <-ctx.Done():
			return fmt.Errorf("%s behind: %s: %w", f.topic, behind, ctx.Err())
		}
	}
}

// behindLocked names the first partition whose position is short of its end ("" if none); with
// others, a partition short only by the owner's own records (OwnWrites) is not.
func (f *Follower) behindLocked(parts []int32, ends map[int32]int64, others bool) string {
	check := func(p int32) string {
		next, ok := f.next[p]
		if end := ends[p]; ok && next < end && !(others && f.own != nil && f.own.covers(p, next, end)) {
			return fmt.Sprintf("partition %d at %d of %d", p, next, end)
		}
		return ""
	}
	if parts == nil {
		for p := range f.next {
			if s := check(p); s != "" {
				return s
			}
		}
		return ""
	}
	for _, p := range parts {
		if s := check(p); s != "" {
			return s
		}
	}
	return ""
}

// Close stops the follower's client; Run returns.
func (f *Follower) Close() { f.cl.Close() }

// Pause stops fetching until Resume: an owner that reads its view only now and then (a repair
// waiting for live traffic to leave room) need not follow the topic meanwhile; the records wait
// in Kafka. CatchUp and Sync wait on a paused follower: Resume first.
func (f *Follower) Pause() { f.cl.PauseFetchTopics(f.topic) }

// Resume fetches again after Pause, from where the follower stopped.
func (f *Follower) Resume() { f.cl.ResumeFetchTopics(f.topic) }

// Paused says whether Pause holds the follower.
func (f *Follower) Paused() bool { return slices.Contains(f.cl.PauseFetchTopics(), f.topic) }

// startRetry is how long Start waits between attempts: a topic created a moment ago may not be
// known to every broker yet, and a broker may be restarting.
const startRetry = 500 * time.Millisecond

// Start follows every partition of the topic from the offsets starts returns (given the
// follower's client, for its admin requests), retrying until that succeeds or ctx ends (then it
// returns ctx's error). Sync waits for it. Call Run afterwards.
func (f *Follower) Start(ctx context.Context, starts func(context.Context, *kgo.Client) (map[int32]int64, error)) error {
	for tries := 1; ; tries++ {
		s, err := starts(ctx, f.cl)
		if err == nil {
			err = f.Follow(ctx, s)
		}
		if err == nil {
			close(f.ready)
			return nil
		}
		if tries%10 == 0 {
			f.log.Warn("cannot place the follower; retrying", zap.String("topic", f.topic), zap.Error(err))
		}
		if err := backoff.Sleep(ctx, startRetry); err != nil {
			return err
		}
	}
}

// Sync returns once every record committed to the topic before the call has been handed over
// (after Start). A catch-up that started less than reuse ago counts, whether it has ended or is
// still in flight (then Sync waits for it rather than listing the end offsets again: every lane
// of a poll asks at the same moment). It waits through broker errors until ctx ends.
func (f *Follower) Sync(ctx context.Context, reuse time.Duration) error {
	return f.sync(ctx, reuse, &f.synced, false)
}

func (f *Follower) sync(ctx context.Context, reuse time.Duration, shared *sharedSync, others bool) error {
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return shared.do(ctx, reuse, time.Now(), func() error {
		for {
			err := f.catchUp(ctx, nil, others)
			if err == nil || ctx.Err() != nil {
				return err
			}
			f.log.Warn("cannot list end offsets; holding the callers", zap.String("topic", f.topic), zap.Error(err))
			if err := backoff.Sleep(ctx, time.Second); err != nil {
				return err
			}
		}
	})
}

// sharedSync lets concurrent callers share one catch-up: a caller that finds one in flight or
// finished that started less than reuse ago takes its result.
type sharedSync struct {
	mu   sync.Mutex
	last *syncCall // the latest catch-up, in flight or done
	// waiting counts callers waiting for another's catch-up (read by the test).
	waiting atomic.Int32
}

type syncCall struct {
	started time.Time
	done    chan struct{}
	err     error
}

// do runs sync, or takes the result of the latest one if it started less than reuse ago.
func (s *sharedSync) do(ctx context.Context, reuse time.Duration, now time.Time, sync func() error) error {
	s.mu.Lock()
	if c := s.last; c != nil && now.Sub(c.started) < reuse {
		s.mu.Unlock()
		if err := s.wait(ctx, c); err == nil || ctx.Err() != nil {
			return err
		}
		s.mu.Lock() // its caller's ctx ended, not ours: catch up ourselves
	}
	c := &syncCall{started: now, done: make(chan struct{})}
	s.last = c
	s.mu.Unlock()
	c.err = sync()
	close(c.done)
	return c.err
}

// wait returns c's result once it has one.
func (s *sharedSync) wait(ctx context.Context, c *syncCall) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
