package delivery

import (
	"context"
	"time"

	"github.com/tollgate-dev/tollgate/internal/kafka"
)

// placed is a followed view's follower (the consent-state view, a ledger), which the view's run
// goroutine places once it has it: until then sync waits for it, and pause and resume have
// nothing to stop.
type placed struct {
	follow *kafka.Follower // set before ready is closed
	ready  chan struct{}
}

func newPlaced() placed { return placed{ready: make(chan struct{})} }

// place hands the follower over; call it once.
func (p *placed) place(f *kafka.Follower) {
	p.follow = f
	close(p.ready)
}

// follower is the follower once placed, nil before.
func (p *placed) follower() *kafka.Follower {
	select {
	case <-p.ready:
		return p.follow
	default:
		return nil
	}
}

// sync returns once every record committed to the topic before the call has been handed over
// (after the follower is placed); a catch-up that started less than reuse ago counts
// (kafka.Follower.Sync).
func (p *placed) sync(ctx context.Context, reuse time.Duration) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	return p.follow.Sync(ctx, reuse)
}

// syncOthers is sync that does not wait for the records the follower's owner wrote itself
// (kafka.Follower.SyncOthers).
func (p *placed) syncOthers(ctx context.Context, reuse time.Duration) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	return p.follow.SyncOthers(ctx, reuse)
}

// wait returns once the follower is placed, or with ctx's error.
func (p *placed) wait(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pause stops following until resume (kafka.Follower.Pause): a repair waiting for live traffic
// to leave room reads nothing meanwhile. sync waits while paused: resume before it.
func (p *placed) pause() {
	if f := p.follower(); f != nil {
		f.Pause()
	}
}

func (p *placed) resume() {
	if f := p.follower(); f != nil {
		f.Resume()
	}
}
