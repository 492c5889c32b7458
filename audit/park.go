package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
)

// Parking: rows ClickHouse refuses for good (see permanent) leave the batch, so the rest of it is
// inserted and the offsets advance, and go, unchanged, to the parked topic <prefix>audit.parked
// with a record of why. Nothing is lost: the parked record is the audit topic's own record
// (same key and Avro value; for a row of a decision set, the whole set, whose other rows,
// inserted again, collapse under FINAL), and its headers say what ClickHouse answered and where
// it was read from; once the cause is fixed it can be produced to its original topic again.
//
// A batch refused for good is split in halves and each half inserted again, down to single
// rows, so only the rows ClickHouse refuses on their own are parked (about log2(batch) failed
// inserts per such row). maxRefusals bounds that search. Parking happens before the batch's
// offsets are committed; a flush that fails after parking is retried whole, so a parked record
// can appear twice in the parked topic (and an inserted row twice in ClickHouse, which FINAL
// collapses).

// maxRefusals bounds the failed inserts of one batch's search for its refused rows: enough to
// isolate a few bad rows among 10000 (each costs about 14 refusals), few enough that a batch
// ClickHouse refuses whole (every row bad, or a column the table lacks) is parked within one
// flush attempt's timeout rather than after 2 × batch failed inserts. Past it, each part of the
// batch still refused is parked as it is, good rows included: parked, not lost.
const maxRefusals = 64

// source is where a buffered row was read from, and its record's key and value (kept to park
// it as it was).
type source struct {
	tp     topicPartition
	offset int64
	key    []byte
	value  []byte
}

// parkFunc parks the records of refused rows, giving ClickHouse's answer as the reason.
type parkFunc func(ctx context.Context, src []source, cause error) error

// insertOrPark inserts rows into table with insert; if ClickHouse refuses them for good it
// bisects them and parks the rows refused alone. It returns the first error that is not
// permanent (the caller retries the flush).
func insertOrPark[T any](ctx context.Context, table string, rows []T, src []source,
	insert func(context.Context, []T) error, park parkFunc) error {
	refusals := 0
	return bisect(ctx, table, rows, src, insert, park, &refusals)
}

func bisect[T any](ctx context.Context, table string, rows []T, src []source,
	insert func(context.Context, []T) error, park parkFunc, refusals *int) error {
	if len(rows) == 0 {
		return nil
	}
	start := time.Now()
	err := insert(ctx, rows)
	if err == nil {
		insertSeconds.WithLabelValues(table).Observe(time.Since(start).Seconds())
		rowsWritten.WithLabelValues(table).Add(float64(len(rows)))
		sent.Add(float64(len(rows)))
		return nil
	}
	if ctx.Err() != nil || !permanent(err) {
		return err
	}
	countError(errPermanent)
	*refusals++
	if len(rows) == 1 || *refusals >= maxRefusals {
		return park(ctx, src, err)
	}
	mid := len(rows) / 2
	if err := bisect(ctx, table, rows[:mid], src[:mid], insert, park, refusals); err != nil {
		return err
	}
	return bisect(ctx, table, rows[mid:], src[mid:], insert, park, refusals)
}

// parker returns the parkFunc of table: it writes the records to the parked topic and waits
// for Kafka's acknowledgement.
func (w *Writer) parker(table string) parkFunc {
	return func(ctx context.Context, src []source, cause error) error {
		failedAt := []byte(time.Now().UTC().Format(time.RFC3339Nano))
		recs := make([]*kgo.Record, 0, len(src))
		for i, s := range src {
			if i > 0 && s.tp == src[i-1].tp && s.offset == src[i-1].offset {
				continue // another row of the same decision set: its record is parked once
			}
			recs = append(recs, &kgo.Record{
				Topic: w.parked,
				Key:   s.key,
				Value: s.value,
				Headers: []kgo.RecordHeader{
					{Key: config.HeaderError, Value: []byte(cause.Error())},
					{Key: config.HeaderOriginalTopic, Value: []byte(s.tp.topic)},
					{Key: config.HeaderOriginalPartition, Value: []byte(strconv.Itoa(int(s.tp.partition)))},
					{Key: config.HeaderOriginalOffset, Value: []byte(strconv.FormatInt(s.offset, 10))},
					{Key: config.HeaderFailedAt, Value: failedAt},
				},
			})
		}
		if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			countError(errPark)
			return fmt.Errorf("park %d rows of %s: %w", len(recs), table, err)
		}
		parkedRows.WithLabelValues(table).Add(float64(len(src)))
		countDiscarded(discardParked, len(src))
		// Where from, not what: the values stay in the parked topic.
		w.log.Error("clickhouse refused rows for good; parked them", zap.String("table", table),
			zap.Int("rows", len(src)), zap.Int("records", len(recs)), zap.String("parked_topic", w.parked), zap.String("topic", src[0].tp.topic),
			zap.Int32("partition", src[0].tp.partition), zap.Int64("offset", src[0].offset), zap.Error(cause))
		return nil
	}
}
