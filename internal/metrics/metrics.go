// Package metrics holds the Prometheus metrics every stage of tollgate shares, named in the spirit
// of vector's instrumentation spec, so one dashboard query covers ingest, the processor, the sinks
// and the audit writer alike:
//
//	tollgate_received_events_total{stage}             events a stage read from its input
//	tollgate_sent_events_total{stage,destination}     events a stage handed on (a topic, a vendor, ClickHouse)
//	tollgate_errors_total{stage,error_type}           failures, by a small fixed set of error types
//	tollgate_discarded_events_total{stage,reason}     events a stage dropped on purpose (blocked, duplicate, invalid)
//
// Stage-specific metrics stay in their packages (tollgate_sink_*, tollgate_processor_*, …). Every
// metric of the code base is registered the same way: a package-level promauto collector on the
// default registry, which `/metrics` serves. Label values come from small fixed sets (stage names,
// destination names from the policy, reasons): never error text, user ids or event ids.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Stage label values.
const (
	StageIngest    = "ingest"
	StageProcessor = "processor"
	StageSink      = "sink"
	StageAudit     = "audit"
)

var (
	// Received counts events a stage read from its input (request bodies, a topic).
	Received = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_received_events_total",
		Help: "Events a stage read from its input (ingest: request bodies; processor: raw topic; sink: its destination topics; audit: audit topics).",
	}, []string{"stage"})
	// Sent counts events a stage handed on. destination is the policy's destination name, or
	// the stage's output ("raw", "clickhouse") where there is no destination.
	Sent = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_sent_events_total",
		Help: "Events a stage handed on: ingest to the raw topic, the processor to destination topics, a sink to its vendor, the audit writer to ClickHouse.",
	}, []string{"stage", "destination"})
	// Errors counts failures by a small fixed set of error types per stage.
	Errors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_errors_total",
		Help: "Failures, by stage and error type (a small fixed set per stage; never raw error text).",
	}, []string{"stage", "error_type"})
	// Discarded counts events a stage dropped on purpose.
	Discarded = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_discarded_events_total",
		Help: "Events a stage dropped on purpose, by reason (invalid input, blocked by consent, duplicate, dead-lettered).",
	}, []string{"stage", "reason"})
)
