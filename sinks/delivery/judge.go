package delivery

import (
	"time"

	"github.com/tollgate-dev/tollgate/sinks/sdk"
)

// judge decides the outcome of each event of a batch the vendor answered with v, after an
// attempt that took latency. It is pure: it changes no item and records nothing (settle and
// records do), so every rule of what an answer means is here and tested on its own. rest is the
// events to send again at once, within the same attempt: the vendor refused the request only
// because of the events it named (Verdict.ResendRest). A batch to split (Verdict.Split) is the
// caller's to cut before judging.
func judge(batch []*item, v sdk.Verdict, latency time.Duration, now time.Time, maxAttempts int,
	backoff func(attempt int, retryAfter time.Duration) time.Duration) (outs []outcome, rest []*item) {
	outs = make([]outcome, 0, len(batch))
	for i, it := range batch {
		class, reason := v.Class, v.Reason
		if why, bad := v.Failed[i]; bad {
			class, reason = sdk.Permanent, why
		} else if class == sdk.Retry && v.ResendRest && len(v.Failed) > 0 {
			rest = append(rest, it)
			continue
		}
		o := outcome{it: it, attempt: it.attempts + 1, http: v.Status, latency: latency}
		if class == sdk.Delivered {
			o.status = StatusDelivered
			outs = append(outs, o)
			continue
		}
		o.reason, o.failed = reason, "permanent"
		if class == sdk.Retry {
			o.failed = "retry"
		}
		limit := maxAttempts
		if it.limit > 0 {
			limit = it.limit // a replay allows max_attempts more than the event's history
		}
		if class == sdk.Retry && o.attempt < limit {
			o.status, o.notBefore = StatusRetrying, now.Add(backoff(o.attempt, v.RetryAfter))
		} else {
			o.status = StatusDeadLettered
		}
		outs = append(outs, o)
	}
	return outs, rest
}
