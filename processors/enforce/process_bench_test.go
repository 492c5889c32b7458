package enforce

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/sample"
	"github.com/tollgate-dev/tollgate/schemas"
)

// BenchmarkProcessPerEvent is the processor's own work for each raw event of a poll, as
// processBatch does it between the Kafka calls: decoding, the dedup check against the state
// store, the consent lookup, the decisions of the demo policy's three destinations, the
// encoding of every output record, and the commit of the poll's state to the store. New ids
// and users each poll, as `make bench` sends them. b.N counts events.
func BenchmarkProcessPerEvent(b *testing.B) {
	const poll, parts = 1000, 4
	p := newTestProcessor(b, parts)
	cfg := p.cfg
	var err error
	evs := sample.Events(7, poll, poll/2, time.Now())
	raw := make([][]byte, len(evs))
	for i := range evs {
		if raw[i], err = json.Marshal(evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	// records renders poll n: the sample events with ids and users of their own.
	records := func(n int) []*kgo.Record {
		recs := make([]*kgo.Record, len(raw))
		for i, body := range raw {
			ev, err := ingest.DecodeEvent(body, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			ev.EventID = fmt.Sprintf("%s-%d", ev.EventID, n)
			ev.UserID, ev.AnonymousID = suffix(ev.UserID, n), suffix(ev.AnonymousID, n)
			v, err := schemas.Events.Encode(ev)
			if err != nil {
				b.Fatal(err)
			}
			recs[i] = &kgo.Record{Topic: "bench.events.raw", Partition: int32(i % parts), Offset: int64(n*poll + i), Value: v}
		}
		return recs
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for n, done := 0, 0; done < b.N; n, done = n+1, done+poll {
		b.StopTimer()
		recs := records(n)
		b.StartTimer()
		cpu0 := testenv.CPUTime()
		batch := p.state.begin()
		p.tally.reset()
		outs := 0
		for _, r := range recs {
			out, err := p.handle(r, batch)
			if err != nil {
				b.Fatal(err)
			}
			outs += len(out)
		}
		for _, o := range batch.changelog(cfg.Topic(config.TopicDedupIDs)) {
			batch.produced(o.Topic, o.Partition, int64(outs))
			outs++
		}
		if err := p.state.commit(batch); err != nil {
			b.Fatal(err)
		}
		cpu += testenv.CPUTime() - cpu0
	}
	// CPU time, not wall time: on a shared machine the wall clock also counts other work.
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

func suffix(s string, n int) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("%s-%d", s, n)
}
