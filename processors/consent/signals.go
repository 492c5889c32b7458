package consent

import (
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Consent signals of a site's CMP (docs/consent.md "Consent signals from CMPs"). Every signal
// present is evaluated per purpose through the policy's consent_sources; any refusal wins, and
// the signals intersect with the event's own consent object. A signal that says nothing about a
// purpose (not mapped, or a Consent Mode key not sent) is no choice, never a grant.

// Sources of a choice, as recorded in decisions.consent_source.
const (
	SourceConsentAPI = "consent_api"
	SourceEvent      = "event"
	SourceTCF        = "tcf"
	SourceGPP        = "gpp"
	SourceGCM        = "gcm"
	SourceCMPIDs     = "cmp_ids"
	SourceGPC        = "gpc"
)

// googleVendor is Google's IAB TCF vendor id; its consent gates the 755 mapping.
const googleVendor = 755

// parsed caches parsed TC and GPP strings across events (signals.Cache says why).
var parsed = signals.NewCache(1024)

// eventSignals are an event's signals, parsed once per event.
type eventSignals struct {
	tcf    *signals.TCF // nil: no TC string
	tcfBad bool         // a TC string that does not parse (ingest checks; a replayed record may not)
	gpp    *signals.GPP
	gppBad bool
	gcm    map[string]signals.State // nil: no Consent Mode object
	cmp    *signals.ConsentManagement
	proof  string
}

func parseSignals(cs *schemas.ConsentSignals) *eventSignals {
	if cs == nil {
		return nil
	}
	s := &eventSignals{proof: signals.Proof(cs.TCF, cs.GPP)}
	if cs.TCF != "" {
		if tc, err := parsed.ParseTCF(cs.TCF); err == nil {
			s.tcf = &tc
		} else {
			s.tcfBad = true
		}
	}
	if cs.GPP != "" {
		if g, err := parsed.ParseGPP(cs.GPP, cs.GPPSID); err == nil {
			s.gpp = &g
		} else {
			s.gppBad = true
		}
	}
	if len(cs.GCM) > 0 {
		s.gcm = make(map[string]signals.State, len(cs.GCM))
		for k, v := range cs.GCM {
			s.gcm[k] = gcmState(v)
		}
	}
	if len(cs.CMPAllowed) > 0 || cs.CMPHasDenied {
		s.cmp = &signals.ConsentManagement{Any: cs.CMPAny, IDs: signals.CMPIDs{
			Allowed: cs.CMPAllowed, Denied: cs.CMPDenied, HasDenied: cs.CMPHasDenied}}
	}
	return s
}

// gcmState reads a stored Consent Mode value: only "granted" grants.
func gcmState(v string) signals.State {
	switch v {
	case "granted":
		return signals.Granted
	case "denied":
		return signals.Denied
	}
	return signals.Unknown
}

// allOf combines the states of every key or purpose a policy purpose maps to: one refusal
// refuses, every one granted grants, anything else is no choice.
func allOf(states ...signals.State) signals.State {
	out := signals.Granted
	for _, s := range states {
		switch s {
		case signals.Denied:
			return signals.Denied
		case signals.Unknown:
			out = signals.Unknown
		}
	}
	if len(states) == 0 {
		return signals.Unknown
	}
	return out
}

func boolState(ok bool) signals.State {
	if ok {
		return signals.Granted
	}
	return signals.Denied
}

// isGoogle reports whether a destination is one of Google's (the vendor 755 mapping applies).
func isGoogle(dest *policy.Destination) bool {
	return dest != nil && (dest.Type == policy.TypeGA4 || dest.Type == policy.TypeGoogleAds)
}

// tcfState is the TC string's answer for a purpose (and destination, when one is given).
func (s *eventSignals) tcfState(src *policy.ConsentSources, purpose string, dest *policy.Destination) signals.State {
	if s.tcf == nil && !s.tcfBad {
		return signals.Unknown
	}
	var states []signals.State
	nums, mapped := src.TCF[purpose]
	vendor := 0
	if dest != nil {
		vendor = dest.TCFVendorID
	}
	// Google's own reading of a TC string, for a Google destination that has no Consent Mode
	// state: purposes map to Consent Mode keys, and without vendor 755's consent all are denied.
	google := isGoogle(dest) && s.gcm == nil && len(src.GCM[purpose]) > 0
	if !mapped && vendor == 0 && !google {
		return signals.Unknown
	}
	if s.tcfBad {
		return signals.Denied // unreadable is never granted
	}
	for _, n := range nums {
		states = append(states, boolState(s.tcf.Purpose(n)))
	}
	if vendor > 0 {
		states = append(states, boolState(s.tcf.Vendor(vendor)))
	}
	if google {
		m := signals.Google755(s.tcf.Purpose)
		vendorOK := s.tcf.Vendor(googleVendor)
		for _, k := range src.GCM[purpose] {
			st, ok := m[k]
			if !ok {
				continue // a key Google does not derive from TCF: no choice from this mapping
			}
			states = append(states, boolState(st == signals.Granted && vendorOK))
		}
	}
	if len(states) == 0 {
		return signals.Unknown
	}
	return allOf(states...)
}

func (s *eventSignals) gcmStateOf(src *policy.ConsentSources, purpose string) signals.State {
	keys := src.GCM[purpose]
	if s.gcm == nil || len(keys) == 0 {
		return signals.Unknown
	}
	states := make([]signals.State, len(keys))
	for i, k := range keys {
		states[i] = s.gcm[k]
	}
	return allOf(states...)
}

func (s *eventSignals) cmpState(src *policy.ConsentSources, purpose string) signals.State {
	ids := src.CMPIDsOf(purpose)
	if s.cmp == nil || len(ids) == 0 {
		return signals.Unknown
	}
	return s.cmp.Purpose(ids)
}

// choice is what the event and its signals say about a purpose.
type choice struct {
	state signals.State
	// srcs[:n] are the sources that expressed a choice, in the order choose asks them (there are
	// four): an array, not a slice, as choose runs several times per decision.
	srcs [4]string
	n    int
}

// choose combines the event's consent entry with every signal present: one refusal refuses,
// otherwise one grant grants, otherwise no choice was made. dest may be nil (the destination-free
// answer used for the consent map handed to sinks).
func (d *decider) choose(purpose string, dest *policy.Destination) choice {
	var c choice
	add := func(source string, st signals.State) {
		if st == signals.Unknown {
			return
		}
		c.srcs[c.n] = source
		c.n++
		if st == signals.Denied || c.state == signals.Denied {
			c.state = signals.Denied
		} else {
			c.state = signals.Granted
		}
	}
	if v, ok := d.ev.Consent[purpose]; ok {
		add(SourceEvent, boolState(v))
	}
	if s := d.sig; s != nil {
		src := &d.pol.ConsentSources
		add(SourceTCF, s.tcfState(src, purpose, dest))
		add(SourceGCM, s.gcmStateOf(src, purpose))
		add(SourceCMPIDs, s.cmpState(src, purpose))
	}
	return c
}

// signalRefuses is the "signals" rule: a CMP signal refusing the purpose blocks, whatever the
// event's own consent says.
func (d *decider) signalRefuses(dest *policy.Destination) bool {
	if d.sig == nil {
		return false
	}
	src := &d.pol.ConsentSources
	return d.sig.tcfState(src, dest.Purpose, dest) == signals.Denied ||
		d.sig.gcmStateOf(src, dest.Purpose) == signals.Denied ||
		d.sig.cmpState(src, dest.Purpose) == signals.Denied
}

// gppOptedOut is the "gpp" rule: an applicable US section of the GPP string says the user opted
// out of sale, sharing or targeted advertising (or cannot be read).
func (d *decider) gppOptedOut() bool {
	return d.sig != nil && (d.sig.gppBad || (d.sig.gpp != nil && d.sig.gpp.OptedOut()))
}

// consentSource lists, sorted and comma-joined, the sources that made a choice bearing on this
// destination's decision; empty when none did.
func (d *decider) consentSource(dest *policy.Destination) string {
	if dest.Purpose == policy.Necessary && (d.st == nil || !d.st.Erased) {
		return ""
	}
	// At most a handful of sources: a slice on the stack, sorted and compacted, rather than a
	// set (this runs for every decision).
	var stack [8]string
	c := d.choose(dest.Purpose, dest)
	out := append(stack[:0], c.srcs[:c.n]...)
	if d.st != nil {
		if _, ok := d.st.Consent[dest.Purpose]; ok || d.st.Erased {
			out = append(out, SourceConsentAPI)
		}
	}
	if dest.Sale {
		if d.ev.GPC {
			out = append(out, SourceGPC)
		}
		if d.sig != nil && (d.sig.gppBad || (d.sig.gpp != nil && usApplies(d.sig.gpp))) {
			out = append(out, SourceGPP)
		}
	}
	switch len(out) {
	case 0:
		return ""
	case 1:
		return out[0]
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// usApplies reports whether an applicable section of the GPP string is a US one (the only ones
// tollgate reads a choice from).
func usApplies(g *signals.GPP) bool {
	for _, id := range g.Applicable {
		if signals.USSection(id) {
			return true
		}
	}
	return false
}
