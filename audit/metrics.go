package audit

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tollgate-dev/tollgate/internal/metrics"
)

// The audit writer's own metrics; the shared stage metrics (internal/metrics) count what it read
// (received), wrote to ClickHouse (sent, destination "clickhouse"), dropped on purpose
// (discarded: undecodable, erased, parked) and its errors by type. Its consumer lag is
// tollgate_consumer_lag{group="<prefix>audit"}, which every tollgate process exports
// (internal/lag).
var (
	rowsWritten = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_audit_rows_written_total",
		Help: "Rows the audit writer inserted into ClickHouse, by table (decisions, deliveries). A batch inserted again after a failed commit counts again.",
	}, []string{"table"})
	batchesWritten = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_audit_batches_total",
		Help: "Batches the audit writer flushed to ClickHouse (inserts and erasures done, offsets committed or queued for commit).",
	})
	insertSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_audit_insert_seconds",
		Help:    "Duration of one successful ClickHouse insert of the audit writer, by table.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5 ms .. ~10 s
	}, []string{"table"})
	parkedRows = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_audit_parked_rows_total",
		Help: "Rows ClickHouse refused for good, written to the parked topic instead, by table.",
	}, []string{"table"})
)

// received and sent are the audit stage's series of the shared counters, looked up once: the
// poll loop counts every record.
var (
	received = metrics.Received.WithLabelValues(metrics.StageAudit)
	sent     = metrics.Sent.WithLabelValues(metrics.StageAudit, "clickhouse")
)

// Values of tollgate_errors_total{stage="audit",error_type}.
const (
	errDecode    = "decode"    // a record that does not decode (skipped)
	errTransient = "transient" // a flush attempt failed and is retried (ClickHouse down, timeout, ...)
	errPermanent = "permanent" // ClickHouse refused rows for good (they are parked)
	errPark      = "park"      // writing to the parked topic failed (retried)
	errCommit    = "commit"    // an offset commit failed (retried with the next batch)
	errFetch     = "fetch"     // a Kafka fetch error
)

func countError(errorType string) {
	metrics.Errors.WithLabelValues(metrics.StageAudit, errorType).Inc()
}

// Values of tollgate_discarded_events_total{stage="audit",reason}.
const (
	discardInvalid = "invalid" // undecodable record
	discardErased  = "erased"  // a decision of an erased user made before the erasure
	discardParked  = "parked"  // refused by ClickHouse for good; kept in the parked topic
)

func countDiscarded(reason string, n int) {
	if n > 0 {
		metrics.Discarded.WithLabelValues(metrics.StageAudit, reason).Add(float64(n))
	}
}
