package enforce

import (
	"github.com/prometheus/client_golang/prometheus"

	stagemetrics "github.com/tollgate-dev/tollgate/internal/metrics"
	"github.com/tollgate-dev/tollgate/processors/consent"
	"github.com/tollgate-dev/tollgate/schemas"
)

type metrics struct {
	processed      prometheus.Counter
	decisions      *prometheus.CounterVec
	consentUpdates prometheus.Counter
	deadLettered   prometheus.Counter
	aborted        prometheus.Counter
	// restrictedAhead counts events decided under a withdrawal or erasure later in the log.
	restrictedAhead prometheus.Counter
	// duplicates counts resends absorbed (committed transactions only).
	duplicates prometheus.Counter
	// restored counts changelog records read by restores (a warm restart reads only the tail).
	restored prometheus.Counter
	// settleWaits counts restores that waited for a previous owner's transaction (settle.go).
	settleWaits prometheus.Counter
	// recoveries counts failed sessions replaced in-process, by reason (session.go).
	recoveries *prometheus.CounterVec
	// The pre-consent hold (hold.go): events held now, releases by cause, the oldest hold's age.
	held       prometheus.Gauge
	releases   *prometheus.CounterVec
	oldestHold prometheus.Gauge
}

// defaultMetrics are the process's, registered with Prometheus' default registerer.
var defaultMetrics = newMetrics().register(prometheus.DefaultRegisterer)

// newMetrics returns the processor's metrics, registered nowhere: a test gives each processor
// its own, so that parallel tests do not count each other's recoveries.
func newMetrics() *metrics {
	return &metrics{
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_records_total", Help: "Raw records processed in committed transactions.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_processor_decisions_total", Help: "Consent decisions by destination, outcome and reason (aborted transactions included).",
		}, []string{"destination", "outcome", "reason"}),
		consentUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_consent_updates_total", Help: "Consent updates and erasures applied.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_dead_lettered_total", Help: "Raw records no tollgate schema wrote, sent to the raw dead-letter topic.",
		}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_aborted_transactions_total", Help: "Transactions aborted (rebalance or produce error); their batch is processed again.",
		}),
		restrictedAhead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_restricted_ahead_total", Help: "Events decided under a withdrawal or erasure acknowledged before them but later in the raw log.",
		}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_restored_records_total", Help: "Changelog records (consent state, remembered ids) read to bring the partitions' state stores up to date.",
		}),
		settleWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_processor_restore_settle_waits_total", Help: "Restores that waited for a transaction still open on a newly assigned changelog partition (the previous owner's) to end.",
		}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_processor_recoveries_total", Help: "Failed processor sessions (fenced producer, restore or state failure, ...) replaced in-process by a new transactional client.",
		}, []string{"reason"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_processor_hold_releases_total", Help: "Held events decided, by cause: choice (granted), withdrawal (refused), erasure, window (no choice in time), cap (past max_events_per_user); queued: events that would have waited, decided at once because their user's choice was already queued behind them.",
		}, []string{"cause"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_processor_held_events", Help: "Events held for their user's consent choice (the policy's hold) in the partitions this process owns.",
		}),
		oldestHold: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_processor_oldest_hold_seconds", Help: "Age of the oldest event held for its user's choice (0: none held).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_duplicates_total", Help: "Resent events (same user key and event_id inside dedup.window) the processor absorbed: no second decision or filtered record.",
		}),
	}
}

// register registers every metric with r and returns m.
func (m *metrics) register(r prometheus.Registerer) *metrics {
	r.MustRegister(m.processed, m.decisions, m.consentUpdates, m.deadLettered, m.aborted,
		m.restrictedAhead, m.duplicates, m.restored, m.settleWaits, m.recoveries, m.releases, m.held, m.oldestHold)
	return m
}

// tally counts what one transaction decided. The shared stage metrics (received, sent,
// discarded, errors) count only what a committed transaction handed on, so an aborted batch,
// which is decided again, is not counted twice.
type tally struct {
	sent    map[string]int // forwarded decisions per destination
	blocked map[string]int // blocked decisions per reason
	poison  int            // raw records dead-lettered
}

func (t *tally) reset() {
	if t.sent == nil {
		t.sent, t.blocked = map[string]int{}, map[string]int{}
	}
	clear(t.sent)
	clear(t.blocked)
	t.poison = 0
}

func (t *tally) decided(d *schemas.Decision) {
	if d.Outcome == consent.Forwarded {
		t.sent[d.Destination]++
	} else {
		t.blocked[d.Reason]++
	}
}

// committed adds the transaction's counts, and its n raw records, to the shared metrics.
func (t *tally) committed(n int) {
	stagemetrics.Received.WithLabelValues(stagemetrics.StageProcessor).Add(float64(n))
	for dest, k := range t.sent {
		stagemetrics.Sent.WithLabelValues(stagemetrics.StageProcessor, dest).Add(float64(k))
	}
	for reason, k := range t.blocked {
		stagemetrics.Discarded.WithLabelValues(stagemetrics.StageProcessor, reason).Add(float64(k))
	}
	if t.poison > 0 {
		stagemetrics.Errors.WithLabelValues(stagemetrics.StageProcessor, "poison_record").Add(float64(t.poison))
	}
}
