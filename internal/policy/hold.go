package policy

import "time"

// Hold is the pre-consent hold (CONTRACT §9, docs/consent.md "Events before the choice"): in an
// opt_in jurisdiction, an event for a destination whose purpose the user has made no choice
// about yet waits up to Window for the choice instead of being blocked at once. Absent, nothing
// is held.
type Hold struct {
	// Window is how long an event waits for the user's choice; then it is decided as without a
	// hold (blocked, no_consent). Written as a Go duration ("10m", "90s"); Window is it parsed.
	WindowText string        `yaml:"window"`
	Window     time.Duration `yaml:"-"`
	// MaxEventsPerUser bounds a user's held events: past it the oldest is decided at once as
	// without a hold. Default: 100.
	MaxEventsPerUser int `yaml:"max_events_per_user"`
}

// DefaultHoldMaxEventsPerUser is max_events_per_user when the policy does not set it.
const DefaultHoldMaxEventsPerUser = 100

// maxHoldWindow bounds window: a hold is for the seconds or minutes a banner waits for its
// answer, and events kept longer would reach vendors past their own windows (GA4's is 72 hours).
const maxHoldWindow = 24 * time.Hour

// Holds reports whether the policy holds events before the user's choice.
func (p *Policy) Holds() bool { return p.Hold != nil }

func (p *Policy) validateHold() error {
	h := p.Hold
	if h == nil {
		return nil
	}
	if h.WindowText == "" {
		return fieldErr("hold.window", "is required (how long an event waits for the choice, like 10m)")
	}
	w, err := time.ParseDuration(h.WindowText)
	if err != nil {
		return fieldErr("hold.window", "%q is not a duration (write it like 10m or 90s)", h.WindowText)
	}
	if w <= 0 || w > maxHoldWindow {
		return fieldErr("hold.window", "must be more than 0 and at most %s, not %s", maxHoldWindow, w)
	}
	h.Window = w
	if h.MaxEventsPerUser == 0 {
		h.MaxEventsPerUser = DefaultHoldMaxEventsPerUser
	}
	if h.MaxEventsPerUser < 1 || h.MaxEventsPerUser > 10_000 {
		return fieldErr("hold.max_events_per_user", "must be between 1 and 10000, not %d", h.MaxEventsPerUser)
	}
	return nil
}
