package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tollgate-dev/tollgate/internal/metrics"
)

// Metric names follow vector's instrumentation spirit; every label value comes from a small fixed
// set (destination names from the policy, statuses, the two blocking reasons).
var (
	sentEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_sent_events_total", Help: "Events the vendor took (status delivered).",
	}, []string{"destination"})
	failedEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_failed_events_total", Help: "Events in a failed delivery attempt, by kind of failure (retry, permanent).",
	}, []string{"destination", "error_type"})
	retriedEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_retried_events_total", Help: "Events handed to the retry topic after a temporary failure (status retrying).",
	}, []string{"destination"})
	deferredEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_deferred_events_total", Help: "Events moved to the retry topic unsent: circuit breaker open, or shutdown.",
	}, []string{"destination"})
	deadLetteredEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_dead_lettered_events_total", Help: "Events sent to the dead-letter topic.",
	}, []string{"destination"})
	blockedEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_blocked_events_total", Help: "Events dropped by the send-time consent re-check, by reason (withdrawn, erased).",
	}, []string{"destination", "reason"})
	requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_sink_request_duration_seconds", Help: "Vendor request latency, by outcome class.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5, 10, 30},
	}, []string{"destination", "class"})
	ledgerWindow = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_sink_ledger_window_seconds",
		Help:    "Time from a vendor's 2xx to the acknowledgement of the event's delivery-ledger entry: the only window in which a crash can make an event go out twice (harmless where the vendor dedups by event id; GA4 has no such key).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"destination"})
	inDoubtEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sink_in_doubt_events_total",
		Help: "Events of requests whose outcome is unknown (a timeout or a lost connection after sending, or no outcome recorded before a crash): each has an in_doubt deliveries row.",
	}, []string{"destination"})
	breakerOpen = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_sink_breaker_open", Help: "1 while the destination's circuit breaker is open or half-open.",
	}, []string{"destination"})
)

// passCounters are a destination's per-pass counters, resolved once: a pass adds each status's
// count once instead of looking a vector's child up per event.
type passCounters struct {
	sent, sentStage, retried, deadLettered, discardedDL, deferred, discardedAlready, inDoubt prometheus.Counter
}

func newPassCounters(name string) passCounters {
	return passCounters{
		sent: sentEvents.WithLabelValues(name), sentStage: metrics.Sent.WithLabelValues(metrics.StageSink, name),
		retried: retriedEvents.WithLabelValues(name), deadLettered: deadLetteredEvents.WithLabelValues(name),
		discardedDL: metrics.Discarded.WithLabelValues(metrics.StageSink, "dead_lettered"), deferred: deferredEvents.WithLabelValues(name),
		discardedAlready: metrics.Discarded.WithLabelValues(metrics.StageSink, statusAlreadyDelivered),
		inDoubt:          inDoubtEvents.WithLabelValues(name),
	}
}

// observe counts a delivery pass's outcomes, per destination and in the stage-wide vectors.
func (r *Runner) observe(c *cycle) {
	m := &r.counters
	add := func(ctr prometheus.Counter, n int) {
		if n > 0 {
			ctr.Add(float64(n))
		}
	}
	add(m.sent, c.counts[StatusDelivered])
	add(m.sentStage, c.counts[StatusDelivered])
	add(m.retried, c.counts[StatusRetrying])
	add(m.deadLettered, c.counts[StatusDeadLettered])
	add(m.discardedDL, c.counts[StatusDeadLettered])
	add(m.deferred, c.counts[statusDeferred])
	add(m.inDoubt, c.counts[StatusInDoubt])
	add(m.discardedAlready, c.counts[statusAlreadyDelivered])
	if c.counts[StatusBlocked] == 0 {
		return
	}
	for _, o := range c.outcomes {
		if o.status == StatusBlocked {
			blockedEvents.WithLabelValues(r.dest.Name, o.reason).Inc()
			metrics.Discarded.WithLabelValues(metrics.StageSink, o.reason).Inc()
		}
	}
}
