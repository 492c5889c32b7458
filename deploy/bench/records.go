package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// What an event costs in records: every Kafka record is encoded, produced, replicated, fetched
// and decoded, every ClickHouse row inserted and merged (issue 24: ~14 records and ~7 rows per
// event, the target 5 records with three destinations forwarding: raw, one decision record,
// three filtered). Counted after the measured phases, once the pipeline has settled, from the
// run's own topics (its prefix) and database.

// recordsPerEvent returns the Kafka figures (kafka_records_per_event) and the ClickHouse ones
// (clickhouse_rows_per_event), and logs the per-topic breakdown.
func recordsPerEvent(ctx context.Context, brokers []string, ch chClient, prefix, db string) (kafkaFig, chFig map[string]any, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	counts, err := settledCounts(ctx, kadm.NewClient(cl), prefix)
	if err != nil {
		return nil, nil, err
	}
	kafkaFig = kafkaPerEvent(counts)
	events := counts["events.raw"]
	rows, err := tableRows(ctx, ch, db)
	if err != nil {
		return kafkaFig, nil, err
	}
	chFig = rowsPerEvent(rows, events)
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		logf("kafka %-28s %10d records  %7.3f per event", t, counts[t], ratio(counts[t], events))
	}
	logf("kafka records per event: %v total, %v with every destination forwarding (target <= 5)",
		kafkaFig["total"], kafkaFig["all_forwarding"])
	logf("clickhouse rows per event: %v total", chFig["total"])
	return kafkaFig, chFig, nil
}

// settledCounts waits until the end offsets of the run's topics stop moving (the sinks and
// the audit writer finish the last events) and returns each topic's records (end − start
// offsets over its partitions, without the prefix).
func settledCounts(ctx context.Context, adm *kadm.Client, prefix string) (map[string]int64, error) {
	const interval, still, timeout = time.Second, 3, 2 * time.Minute
	deadline := time.Now().Add(timeout)
	var last map[string]int64
	for same := 0; same < still; {
		counts, err := topicRecords(ctx, adm, prefix)
		if err != nil {
			return nil, err
		}
		if maps.Equal(counts, last) {
			same++
		} else {
			same = 0
		}
		last = counts
		if time.Now().After(deadline) {
			logf("record counts: the topics still move after %s; counting them as they are", timeout)
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
	return last, nil
}

// topicRecords is end − start offsets per topic of the prefix. On a topic a transactional
// producer writes (the processor's), each transaction adds a commit marker per partition it
// touched: counted too, it is a record the broker stores and every reader skips.
func topicRecords(ctx context.Context, adm *kadm.Client, prefix string) (map[string]int64, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var mine []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, prefix) {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("no topic starts with %s", prefix)
	}
	ends, err := adm.ListEndOffsets(ctx, mine...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, mine...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	out := map[string]int64{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		start, ok := starts.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || start.Err != nil {
			ferr = fmt.Errorf("offsets of %s[%d] unknown", o.Topic, o.Partition)
			return
		}
		out[strings.TrimPrefix(o.Topic, prefix)] += o.Offset - start.Offset
	})
	return out, ferr
}

// kafkaPerEvent turns record counts per topic (names without the prefix) into records per
// event, the events being the raw topic's records (ingest's producer is not transactional:
// one record per accepted event). all_forwarding estimates the total had every destination
// forwarded every event: the per-event topics as counted, plus, per destination, the records a
// forwarded event costs (its filtered record and what delivering it writes: dest.<name>.*
// topics and audit.deliveries, per record of the dest.<name> topics).
func kafkaPerEvent(counts map[string]int64) map[string]any {
	events := counts["events.raw"]
	perTopic := map[string]any{}
	var total, perEvent, perForward, forwarded int64
	dests := 0
	for t, n := range counts {
		perTopic[t] = round(ratio(n, events), 3)
		total += n
		switch {
		case strings.HasPrefix(t, "dest.") && !strings.Contains(strings.TrimPrefix(t, "dest."), "."):
			dests++
			forwarded += n
			perForward += n
		case strings.HasPrefix(t, "dest.") || t == "audit.deliveries":
			perForward += n
		default:
			perEvent += n
		}
	}
	out := map[string]any{"events": events, "per_topic": perTopic, "total": round(ratio(total, events), 3),
		"destinations": dests, "forwarded_share": round(ratio(forwarded, events*int64(max(dests, 1))), 3),
		"note": "end - start offsets: the processor's transaction markers are counted (one per partition and transaction)"}
	if forwarded > 0 {
		out["all_forwarding"] = round(ratio(perEvent, events)+float64(dests)*ratio(perForward, forwarded), 3)
	}
	return out
}

// tableRows is each table's rows in the run's database (active parts: after the merges so far,
// which collapse copies and fold the daily summaries).
func tableRows(ctx context.Context, ch chClient, db string) (map[string]int64, error) {
	out, err := ch.query(ctx, fmt.Sprintf("SELECT table, sum(rows) FROM system.parts WHERE database = '%s' AND active GROUP BY table", db))
	if err != nil {
		return nil, err
	}
	rows := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("system.parts: %q: %w", line, err)
		}
		rows[f[0]] = n
	}
	return rows, nil
}

func rowsPerEvent(rows map[string]int64, events int64) map[string]any {
	perTable := map[string]any{}
	var total int64
	for t, n := range rows {
		perTable[t] = round(ratio(n, events), 3)
		total += n
	}
	return map[string]any{"per_table": perTable, "total": round(ratio(total, events), 3),
		"note": "rows of active parts: merges so far may have collapsed copies and folded the daily summaries"}
}

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}
