package enforce

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
}

var defaultMetrics = &metrics{
	processed: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_records_total", Help: "Raw records processed in committed transactions.",
	}),
	decisions: promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_processor_decisions_total", Help: "Consent decisions by destination, outcome and reason (aborted transactions included).",
	}, []string{"destination", "outcome", "reason"}),
	consentUpdates: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_consent_updates_total", Help: "Consent updates and erasures applied.",
	}),
	deadLettered: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_dead_lettered_total", Help: "Raw records no tollgate schema wrote, sent to the raw dead-letter topic.",
	}),
	aborted: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_aborted_transactions_total", Help: "Transactions aborted (rebalance or produce error); their batch is processed again.",
	}),
	restrictedAhead: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_restricted_ahead_total", Help: "Events decided under a withdrawal or erasure acknowledged before them but later in the raw log.",
	}),
	restored: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_processor_restored_records_total", Help: "Changelog records (consent state, remembered ids) read to bring the partitions' state stores up to date.",
	}),
	duplicates: promauto.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_duplicates_total", Help: "Resent events (same user key and event_id inside dedup.window) the processor absorbed: no second decision or filtered record.",
	}),
}
