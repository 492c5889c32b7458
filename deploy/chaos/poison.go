package main

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/standin"
)

// poisonValues are records no tollgate schema wrote: garbage, an Avro single-object header with
// an unknown fingerprint, a known fingerprint with a truncated body, and nothing at all.
var poisonValues = [][]byte{
	[]byte("not avro {\"event\":1}"),
	{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xff},
	{0xC3, 0x01},
	nil,
}

// poison writes the poison values to every topic a tollgate component reads.
func poison(brokers, prefix string, vendors map[string]*standin.Server) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	topics := []string{"events.raw", "audit.decisions", "audit.deliveries", "consent.state"}
	for dest := range vendors {
		topics = append(topics, "dest."+dest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, t := range topics {
		for _, v := range poisonValues {
			recs = append(recs, &kgo.Record{Topic: prefix + t, Key: []byte("poison-user"), Value: v})
		}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// dlqCounts returns how many records each dead-letter topic of the run holds.
func dlqCounts(ctx context.Context, brokers, prefix string) map[string]int64 {
	out := map[string]int64{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return out
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return out
	}
	var dlqs []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, prefix) && strings.HasSuffix(t, ".dlq") {
			dlqs = append(dlqs, t)
		}
	}
	sort.Strings(dlqs)
	ends, err1 := adm.ListEndOffsets(ctx, dlqs...)
	starts, err2 := adm.ListStartOffsets(ctx, dlqs...)
	if err1 != nil || err2 != nil {
		return out
	}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			out[strings.TrimPrefix(o.Topic, prefix)] += o.Offset - s.Offset
		}
	})
	return out
}
