// Package report produces the evidence a privacy team hands over: the data-subject access report
// (GDPR Art. 15: who received which data about a person, when, on what basis) read from the audit
// tables, and the record of processing (Art. 30) generated from the policy.
//
// The access report's data is read by the audit package (audit.DB.UserAccess, in the query forms
// docs/audit.md documents, so copies from re-inserted batches never count twice); this package
// only arranges and renders it.
package report

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/audit"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// Legal bases of a destination's processing.
const (
	BasisConsent   = "consent"
	BasisNecessary = "necessary"
)

// Access is the access report of one user.
type Access struct {
	User        string    `json:"user"`
	GeneratedAt time.Time `json:"generated_at"`
	Database    string    `json:"database"`
	// Erased is set when the user has been erased, with the time of the erasure.
	Erased   bool       `json:"erased"`
	ErasedAt *time.Time `json:"erased_at,omitempty"`
	// PolicyVersions are every policy version a decision about the user was made under.
	PolicyVersions []string            `json:"policy_versions"`
	Destinations   []AccessDestination `json:"destinations"`
	// Retention says how long the audit trail keeps the user's key (older decisions are
	// anonymised and no longer attributable to anyone, so they are not in this report).
	AnonymizeAfter string `json:"anonymize_after"`
	// Labels names each field path of the report in words (policy.Label), as the HTML shows them.
	Labels map[string]string `json:"labels"`
}

// AccessDestination is what one destination received about the user, or was kept from it.
type AccessDestination struct {
	Name           string            `json:"destination"`
	Type           string            `json:"type"`
	Purposes       []string          `json:"purposes"`
	LegalBasis     string            `json:"legal_basis"`
	Sale           bool              `json:"sale"`
	FieldsSent     []string          `json:"fields_sent"` // field paths, never values
	FieldsHashed   []string          `json:"fields_hashed"`
	First          *time.Time        `json:"first,omitempty"` // earliest and latest event decided
	Last           *time.Time        `json:"last,omitempty"`
	EventsSent     uint64            `json:"events_sent"`
	EventsBlocked  uint64            `json:"events_blocked"`
	BlockedBy      map[string]uint64 `json:"blocked_by_reason"`
	Deliveries     map[string]uint64 `json:"deliveries"` // events by the status of their last attempt
	PolicyVersions []string          `json:"policy_versions"`
	// EventsHeld counts the events that waited for the user's choice under the policy's hold
	// (docs/consent.md "Events before the choice"), EventsHeldSent those of them sent once the
	// choice allowed it; HeldMaxMs is the longest wait.
	EventsHeld     uint64 `json:"events_held"`
	EventsHeldSent uint64 `json:"events_held_sent"`
	HeldMaxMs      uint32 `json:"held_max_ms"`
}

// BuildAccess reads what the audit trail holds about user (user_id, or anonymous_id for an
// anonymous user) and arranges it by destination: those of the policy, in its order, then any
// the audit trail names that the policy no longer has.
func BuildAccess(ctx context.Context, db *audit.DB, pol *policy.Policy, user string, now time.Time) (*Access, error) {
	ua, err := db.UserAccess(ctx, user)
	if err != nil {
		return nil, err
	}
	a := &Access{User: user, GeneratedAt: now.UTC().Truncate(time.Second), Database: db.Database, PolicyVersions: []string{}}
	byDest := map[string]*AccessDestination{}
	dest := func(name string) *AccessDestination {
		if d := byDest[name]; d != nil {
			return d
		}
		d := &AccessDestination{Name: name, Purposes: []string{}, FieldsSent: []string{}, FieldsHashed: []string{},
			BlockedBy: map[string]uint64{}, Deliveries: map[string]uint64{}, PolicyVersions: []string{}}
		if pd := pol.Destinations[name]; pd != nil {
			d.Type, d.Sale, d.Purposes = pd.Type, pd.Sale, []string{pd.Purpose}
		}
		byDest[name] = d
		return d
	}
	for _, name := range pol.Names {
		dest(name)
	}
	versions := map[string]bool{}
	for _, g := range ua.Decisions {
		d := dest(g.Destination)
		d.EventsHeld += g.Held
		d.HeldMaxMs = max(d.HeldMaxMs, g.HeldMaxMs)
		if g.Outcome == "forwarded" {
			d.EventsSent += g.Count
			d.EventsHeldSent += g.Held
		} else {
			d.EventsBlocked += g.Count
			d.BlockedBy[g.Reason] += g.Count
		}
		if d.First == nil || g.First.Before(*d.First) {
			d.First = &g.First
		}
		if d.Last == nil || g.Last.After(*d.Last) {
			d.Last = &g.Last
		}
		d.Purposes = addAll(d.Purposes, g.Purpose)
		d.PolicyVersions = addAll(d.PolicyVersions, g.PolicyVersions...)
		d.FieldsSent = addAll(d.FieldsSent, g.FieldsSent...)
		for _, v := range g.PolicyVersions {
			versions[v] = true
		}
	}
	for _, dl := range ua.Deliveries {
		dest(dl.Destination).Deliveries[dl.Status] += dl.Count
	}
	a.Erased, a.ErasedAt = ua.ErasedAt != nil, ua.ErasedAt

	for _, name := range pol.Names {
		a.Destinations = append(a.Destinations, *finish(byDest[name], pol))
		delete(byDest, name)
	}
	rest := make([]string, 0, len(byDest))
	for name := range byDest {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	for _, name := range rest {
		a.Destinations = append(a.Destinations, *finish(byDest[name], pol))
	}
	for v := range versions {
		a.PolicyVersions = append(a.PolicyVersions, v)
	}
	slices.Sort(a.PolicyVersions)
	a.Labels = map[string]string{}
	for _, d := range a.Destinations {
		maps.Copy(a.Labels, labelsFor(pol, d.FieldsSent))
	}
	return a, nil
}

// finish sorts the lists and derives the legal basis and hashed fields.
func finish(d *AccessDestination, pol *policy.Policy) *AccessDestination {
	slices.Sort(d.Purposes)
	slices.Sort(d.FieldsSent)
	slices.Sort(d.PolicyVersions)
	d.LegalBasis = BasisConsent
	if len(d.Purposes) > 0 && !slices.ContainsFunc(d.Purposes, func(p string) bool { return p != policy.Necessary }) {
		d.LegalBasis = BasisNecessary
	}
	if pd := pol.Destinations[d.Name]; pd != nil {
		for _, f := range d.FieldsSent {
			if pd.Hashed(f) {
				d.FieldsHashed = append(d.FieldsHashed, f)
			}
		}
	}
	return d
}

// addAll appends the items not yet in list.
func addAll(list []string, items ...string) []string {
	for _, it := range items {
		if it != "" && !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}
