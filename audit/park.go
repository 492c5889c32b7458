package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/metrics"
)

// Parking: rows ClickHouse refuses for good (see permanent) leave the batch, so the rest of it is
// inserted and the offsets advance, and go, unchanged, to the parked topic <prefix>audit.parked
// with a record of why. Nothing is lost: the parked record is the audit topic's own record
// (same Avro value), and its headers say what ClickHouse answered and where it was read from;
// once the cause is fixed it can be produced to its original topic again.
//
// A batch refused for good is split in halves and each half inserted again, down to single
// rows, so only the rows ClickHouse refuses on their own are parked (log2(batch) extra inserts
// per such row). Parking happens before the batch's offsets are committed; a flush that fails
// after parking is retried whole, so a parked record can appear twice in the parked topic (and
// an inserted row twice in ClickHouse, which FINAL collapses).

// source is where a buffered row was read from, and its record value (kept to park it).
type source struct {
	tp     topicPartition
	offset int64
	value  []byte
}

// insertOrPark inserts rows into table with insert; if ClickHouse refuses them for good it
// bisects them and parks the rows refused alone. It returns the first error that is not
// permanent (the caller retries the flush).
func insertOrPark[T any](ctx context.Context, w *Writer, table string, rows []T, src []source, insert func(context.Context, []T) error) error {
	if len(rows) == 0 {
		return nil
	}
	start := time.Now()
	err := insert(ctx, rows)
	if err == nil {
		insertSeconds.WithLabelValues(table).Observe(time.Since(start).Seconds())
		rowsWritten.WithLabelValues(table).Add(float64(len(rows)))
		metrics.Sent.WithLabelValues(metrics.StageAudit, "clickhouse").Add(float64(len(rows)))
		return nil
	}
	if ctx.Err() != nil || !permanent(err) {
		return err
	}
	if len(rows) == 1 {
		return w.park(ctx, table, src[0], err)
	}
	mid := len(rows) / 2
	if err := insertOrPark(ctx, w, table, rows[:mid], src[:mid], insert); err != nil {
		return err
	}
	return insertOrPark(ctx, w, table, rows[mid:], src[mid:], insert)
}

// park writes one refused row's record to the parked topic and waits for Kafka's
// acknowledgement.
func (w *Writer) park(ctx context.Context, table string, src source, cause error) error {
	countError(errPermanent)
	rec := &kgo.Record{
		Topic: w.parked,
		Value: src.value,
		Headers: []kgo.RecordHeader{
			{Key: config.HeaderError, Value: []byte(cause.Error())},
			{Key: config.HeaderOriginalTopic, Value: []byte(src.tp.topic)},
			{Key: config.HeaderOriginalPartition, Value: []byte(strconv.Itoa(int(src.tp.partition)))},
			{Key: config.HeaderOriginalOffset, Value: []byte(strconv.FormatInt(src.offset, 10))},
			{Key: config.HeaderFailedAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		},
	}
	if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		countError(errPark)
		return fmt.Errorf("park a row of %s: %w", table, err)
	}
	parkedRows.WithLabelValues(table).Inc()
	countDiscarded(discardParked, 1)
	w.log.Error("clickhouse refused a row for good; parked it", zap.String("table", table),
		zap.String("parked_topic", w.parked), zap.String("topic", src.tp.topic),
		zap.Int32("partition", src.tp.partition), zap.Int64("offset", src.offset), zap.Error(cause))
	return nil
}
