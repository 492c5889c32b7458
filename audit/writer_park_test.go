package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&proto.Exception{Code: 53, Name: "DB::Exception"}, true},                         // TYPE_MISMATCH
		{fmt.Errorf("insert decisions: %w", &proto.Exception{Code: 395}), true},           // throwIf check, wrapped
		{fmt.Errorf("insert decisions: %w", &proto.Exception{Code: 131}), true},           // TOO_LARGE_STRING_SIZE
		{&proto.Exception{Code: 252}, false},                                              // TOO_MANY_PARTS
		{&proto.Exception{Code: 241}, false},                                              // MEMORY_LIMIT_EXCEEDED
		{&proto.Exception{Code: 242}, false},                                              // TABLE_IS_READ_ONLY
		{&proto.Exception{Code: 60}, false},                                               // UNKNOWN_TABLE
		{&proto.Exception{Code: 999999}, false},                                           // never seen: retried
		{fmt.Errorf("insert decisions: %w", io.EOF), false},                               // connection dropped
		{fmt.Errorf("insert decisions: %w", context.DeadlineExceeded), false},             // attempt timeout
		{errors.New("dial tcp 127.0.0.1:9000: connect: connection refused"), false},       // server down
		{fmt.Errorf("insert decisions: column event_id: %w", errColumnConverter()), true}, // the driver refuses a value
	} {
		require.Equal(t, tc.want, permanent(tc.err), "%v", tc.err)
	}
}

// errColumnConverter is the error clickhouse-go gives for Go values a column cannot take.
func errColumnConverter() error {
	return &chcolumn.ColumnConverterError{Op: "Append", To: "String", From: "[]int"}
}

// A row ClickHouse refuses for good is parked in <prefix>audit.parked with why and where it came
// from; every other row of its batch is inserted and the offsets advance past it (before, the
// writer retried such a batch forever and stalled its partitions).
func TestWriterParksRowsClickHouseRefuses(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	createTopics(t, cfg)
	db := openDB(t, cfg)
	ctx := context.Background()
	// A check on the table, as an operator might add one: the row of this event can never be
	// inserted (ClickHouse answers code 395, whichever block carries it).
	poison := testDecision(7)
	require.NoError(t, db.Exec(ctx, "ALTER TABLE "+db.table("decisions")+
		" ADD COLUMN refuse UInt8 MATERIALIZED throwIf(event_id = '"+poison.EventID+"')"))

	parkedBefore := testutil.ToFloat64(parkedRows.WithLabelValues("decisions"))
	group := testGroup(t, cfg)
	p := producer(t, cfg)
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, decisionRecord(t, cfg, int32(i%cfg.Kafka.Partitions), testDecision(i)))
	}
	recs = append(recs, deliveryRecord(t, cfg, 0, testDelivery(7)), deliveryRecord(t, cfg, 1, testDelivery(8)))
	produce(t, p, recs...)
	poisonRec := recs[7]

	log, _ := testLogger(t)
	w := startWriter(t, cfg, group, log)
	end := endOffsets(t, cfg)
	require.Eventually(t, func() bool { return polledCommitted(t, cfg, group) == end }, waitFor, 50*time.Millisecond)
	require.NoError(t, w.stop())

	rows := readDecisions(t, db, "decisions")
	require.Len(t, rows, 19)
	require.NotContains(t, rows, poison.DecisionID)
	require.Equal(t, uint64(2), countDeliveries(t, db))
	require.GreaterOrEqual(t, testutil.ToFloat64(parkedRows.WithLabelValues("decisions"))-parkedBefore, 1.0)

	// The parked topic holds the refused record unchanged, with the reason and its origin.
	parked := parkedRecords(t, cfg)
	for _, r := range parked { // once, or again if a flush was retried after parking
		require.Equal(t, poisonRec.Key, r.Key)
		require.Equal(t, poisonRec.Value, r.Value)
		d, err := schemas.DecodeDecisions(nil, r.Value)
		require.NoError(t, err)
		require.Equal(t, poison.DecisionID, d[0].DecisionID)
		require.Contains(t, kafka.Header(r, config.HeaderError), "code: 395")
		require.Equal(t, poisonRec.Topic, kafka.Header(r, config.HeaderOriginalTopic))
		require.Equal(t, strconv.Itoa(int(poisonRec.Partition)), kafka.Header(r, config.HeaderOriginalPartition))
		require.Equal(t, strconv.FormatInt(poisonRec.Offset, 10), kafka.Header(r, config.HeaderOriginalOffset))
		_, err = time.Parse(time.RFC3339Nano, kafka.Header(r, config.HeaderFailedAt))
		require.NoError(t, err)
	}
}

// parkedRecords waits for the parked topic to hold records and returns those read by then.
func parkedRecords(t *testing.T, cfg *config.Config) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ConsumeTopics(cfg.Topic(config.TopicAuditParked)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var parked []*kgo.Record
	require.Eventually(t, func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		parked = append(parked, cl.PollFetches(pctx).Records()...)
		return len(parked) > 0
	}, waitFor, 10*time.Millisecond)
	return parked
}
