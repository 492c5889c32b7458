package delivery

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

// DeadLetter is one record of a destination's dead-letter topic.
type DeadLetter struct {
	Partition    int32
	Offset       int64
	EventID      string // "" when the record is not a readable event
	Attempts     int
	FirstFailure time.Time
	FailedAt     time.Time
	Error        string
	record       *kgo.Record
}

// ReadDeadLetters returns the destination's dead-letter records, oldest first per partition,
// from the offsets in starts (nil: from the start) to the end as of the call.
func ReadDeadLetters(ctx context.Context, cfg *config.Config, dest string, log *zap.Logger, starts map[int32]int64) ([]DeadLetter, map[int32]int64, error) {
	topic := cfg.Topic(config.DLQTopic(dest))
	cl, err := kafka.NewClient(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	ends, err := kafka.EndOffsets(ctx, cl, topic)
	if err != nil {
		return nil, nil, err
	}
	var out []DeadLetter
	err = kafka.ReadRange(ctx, cfg, log, topic, starts, ends, func(rec *kgo.Record) {
		d := DeadLetter{Partition: rec.Partition, Offset: rec.Offset, Error: kafka.Header(rec, config.HeaderError),
			FirstFailure: ParseHeaderTime(kafka.Header(rec, config.HeaderFirstFailure)),
			FailedAt:     ParseHeaderTime(kafka.Header(rec, config.HeaderFailedAt)), record: rec}
		d.Attempts, _ = strconv.Atoi(kafka.Header(rec, config.HeaderAttempts))
		if d.FailedAt.IsZero() {
			d.FailedAt = rec.Timestamp
		}
		if ev, err := schemas.FilteredEvents.Decode(rec.Value); err == nil {
			d.EventID = ev.EventID
		}
		out = append(out, d)
	})
	return out, ends, err
}
