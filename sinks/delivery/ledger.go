package delivery

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate-dev/tollgate/internal/kafka"
)

// The delivery ledger and journal of a destination, in four files by job:
//
//   - journal.go writes the journal: an intent before each request, its outcome after, the
//     lines of the same moment in one record;
//   - ledgerstore.go is the local store (pebble, with an in-memory filter, filter.go) of the
//     events never to be sent again and of the intents still open;
//   - ledgerfollow.go reads the journal topic into the store, and offers the catch-up a request
//     waits for before it leaves out the events already delivered (skipDelivered);
//   - this file starts them together; doubt.go settles the requests left in doubt.
//
// The window that is left is a request whose outcome is unknown: a sink killed between sending
// it and the outcome's acknowledgement, or a request that timed out or lost its connection after
// the body was sent. Such events are in doubt (CONTRACT §9): where the vendor dedups by event id
// they are sent again, else the destination's on_doubt decides; either way each gets an
// in_doubt deliveries row. tollgate_sink_ledger_window_seconds measures how long the window
// stays open after a vendor's 2xx.

// startLedger opens the destination's ledger store, follows its journal and starts the journal
// writer; stop undoes it all. Both the runner and the DLQ replayer deliver through it.
func (r *Runner) startLedger(ctx context.Context, g *errgroup.Group) (stop func(), err error) {
	var l *ledgerStore
	if r.privateLedger != nil {
		l, err = openPrivateLedgerStore(r.cfg, r.dest.Name, r.log, r.privateLedger) // a repair's (repair.go)
	} else {
		l, err = openLedgerStore(r.cfg, r.dest.Name, r.log)
	}
	if err != nil {
		return nil, err
	}
	// No linger: the journal's rounds are its own group commit (journal.go).
	cl, err := kafka.NewClient(r.cfg, r.log, kgo.DefaultProduceTopic(l.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		_ = l.close()
		return nil, err
	}
	j := newJournal(l, cl, r.dest.Name, ledgerWindow.WithLabelValues(r.dest.Name))
	r.journal = j
	g.Go(func() error { return l.run(ctx, r.cfg) })
	return func() {
		j.closeWriter(shutdownGrace)
		cl.Close()
		if err := l.close(); err != nil {
			r.log.Warn("delivery ledger: close", zap.Error(err))
		}
	}, nil
}
