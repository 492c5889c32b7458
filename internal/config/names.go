package config

// Every name tollgate gives to something in Kafka lives in this file: topics, consumer groups and
// record headers. Topic and group names start with kafka.topic_prefix, so deployments sharing a
// broker stay apart.

// Topic returns the full name of a tollgate topic ("events.raw" -> "tg.events.raw").
func (c *Config) Topic(name string) string { return c.Kafka.TopicPrefix + name }

// Topic names, without the prefix.
const (
	TopicRaw        = "events.raw"
	TopicDecisions  = "audit.decisions"
	TopicDeliveries = "audit.deliveries"
	TopicState      = "consent.state"
	// TopicDedupIDs is the changelog of the event ids the processor remembers (schema DedupIDs,
	// one record per transaction and partition, keyed by a user of that partition; a Duplicate
	// per sighting before, still read); Kafka's time retention drops ids past dedup.window.
	TopicDedupIDs = "dedup.ids"
	// TopicHeld is the changelog of the events held for their user's consent choice (the
	// policy's hold; schema HeldEvents, compacted, keyed by user: raw offsets, not events).
	TopicHeld = "consent.held"
	// TopicDuplicates receives one Duplicate per resend the processor absorbed.
	TopicDuplicates = "audit.duplicates"
	// TopicRawDLQ receives raw records no tollgate schema wrote (poison records), with headers
	// naming the error and where they came from.
	TopicRawDLQ = "events.raw.dlq"
	// TopicAuditParked receives audit records ClickHouse refused for good (docs/audit.md,
	// "Parked rows"), with headers naming the error and where they came from.
	TopicAuditParked = "audit.parked"
)

// DestTopic is the filtered topic of a destination ("dest.meta").
func DestTopic(name string) string { return "dest." + name }

// RetryTopic is the delayed-retry topic of a destination ("dest.meta.retry"): events waiting for
// their next attempt, so the destination's main topic never waits for them.
func RetryTopic(name string) string { return "dest." + name + ".retry" }

// LedgerTopic is the delivery ledger of a destination ("dest.meta.ledger"): the events its vendor
// accepted, keyed by event id, which every sink of the destination checks before sending.
func LedgerTopic(name string) string { return "dest." + name + ".ledger" }

// DLQTopic is the dead-letter topic of a destination ("dest.meta.dlq").
func DLQTopic(name string) string { return "dest." + name + ".dlq" }

// ProcessorGroup is the consent processors' consumer group (and transactional id prefix).
func (c *Config) ProcessorGroup() string { return c.Kafka.TopicPrefix + "processor" }

// SinkGroup is the consumer group of a destination's sink (its main topic).
func (c *Config) SinkGroup(dest string) string { return c.Kafka.TopicPrefix + "sink." + dest }

// SinkRetryGroup is the consumer group of a destination's retry consumer.
func (c *Config) SinkRetryGroup(dest string) string { return c.SinkGroup(dest) + ".retry" }

// DLQReplayGroup is the group `tollgate dlq replay` commits to, so each dead letter is replayed
// once however often the command runs.
func (c *Config) DLQReplayGroup(dest string) string {
	return c.Kafka.TopicPrefix + "dlq-replay." + dest
}

// AuditGroup is the audit writer's consumer group.
func (c *Config) AuditGroup() string { return c.Kafka.TopicPrefix + "audit" }

// Record header keys. Values are UTF-8 text.
const (
	// HeaderType marks a raw record as an event or a consent update (ingest sets it).
	HeaderType = "tg-type"
	// HeaderError is the last failure reason ("http_400", "timeout", a decode error, …).
	HeaderError = "tg-error"
	// HeaderAttempts is the number of delivery attempts made so far.
	HeaderAttempts = "tg-attempts"
	// HeaderFirstFailure is the time of the first failed attempt ("" if none).
	HeaderFirstFailure = "tg-first-failure"
	// HeaderNotBefore, on the retry topic, is the earliest time of the next attempt.
	HeaderNotBefore = "tg-not-before"
	// HeaderFailedAt, on a dead-letter topic, is when the record was dead-lettered.
	HeaderFailedAt = "tg-failed-at"
	// HeaderHTTPStatus, on a dead-letter topic, is the last HTTP status (0: none).
	HeaderHTTPStatus = "tg-http-status"
	// HeaderOriginalTopic, HeaderOriginalPartition and HeaderOriginalOffset say where a
	// dead-lettered or parked record was read from.
	HeaderOriginalTopic     = "tg-original-topic"
	HeaderOriginalPartition = "tg-original-partition"
	HeaderOriginalOffset    = "tg-original-offset"
)
