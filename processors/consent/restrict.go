package consent

import (
	"iter"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// The consent-restriction rule: what a user's recorded state (/v1/consent, erasure) takes away
// from an event. Rules 1–3 of the decision order live here once, and every place that applies
// recorded consent uses them: the engine deciding an event, the processor's lookahead applying a
// withdrawal queued behind the event, and a sink's re-check right before sending.

// Restricts returns ReasonErased, ReasonWithdrawn or "" for an event of the given purpose. An
// erasure blocks whatever the purpose, necessary included (rule 1). The necessary purpose cannot
// be withdrawn (rule 2 comes before rule 3), and neither can an event without a purpose. Otherwise
// the purpose is withdrawn when refused reports the recorded state refusing it (rule 3).
func Restricts(erased bool, refused func(purpose string) bool, purpose string) string {
	switch {
	case erased:
		return ReasonErased
	case purpose == policy.Necessary || purpose == "":
		return ""
	case refused(purpose):
		return ReasonWithdrawn
	}
	return ""
}

// Refused yields the purposes a recorded consent refuses: those set to false. A recorded true
// refuses nothing and grants nothing by itself (it intersects with the event's own consent), and a
// later grant never lifts an earlier refusal for events decided before it.
func Refused(recorded map[string]bool) iter.Seq[string] {
	return func(yield func(string) bool) {
		for purpose, choice := range recorded {
			if !choice && !yield(purpose) {
				return
			}
		}
	}
}
