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
	tcs    []*signals.TCF           // every TC string that parsed: tcf, then the GPP string's TCF sections
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
			s.tcs = append(s.tcs, s.tcf)
		} else {
			s.tcfBad = true
		}
	}
	if cs.GPP != "" {
		if g, err := parsed.ParseGPP(cs.GPP, cs.GPPSID); err == nil {
			s.gpp = &g
			for i := range g.TCF {
				s.tcs = append(s.tcs, &g.TCF[i])
			}
		} else {
			s.gppBad = true
		}
	}
	if len(cs.GCM) > 0 {
		s.gcm = make(map[string]signals.State, len(cs.GCM))
		for k, v := range cs.GCM {
			s.gcm[k], _ = signals.ParseState(v) // only "granted" grants
		}
	}
	if len(cs.CMPAllowed) > 0 || cs.CMPHasDenied {
		s.cmp = &signals.ConsentManagement{Any: cs.CMPAny, IDs: signals.CMPIDs{
			Allowed: cs.CMPAllowed, Denied: cs.CMPDenied, HasDenied: cs.CMPHasDenied}}
	}
	return s
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
	return s.tcStringState(s.tcf, src, purpose, dest)
}

// gppTCFState is the answer of the GPP string's TCF sections (tcfeuv2, tcfcav1), each read as a
// TC string: all must grant, one refusal refuses.
func (s *eventSignals) gppTCFState(src *policy.ConsentSources, purpose string, dest *policy.Destination) signals.State {
	if s.gpp == nil || len(s.gpp.TCF) == 0 {
		return signals.Unknown
	}
	var states [2]signals.State // IAB defines two TCF sections, each at most once in a string
	n := 0
	for i := 0; i < len(s.gpp.TCF) && n < len(states); i++ {
		states[n] = s.tcStringState(&s.gpp.TCF[i], src, purpose, dest)
		n++
	}
	return allOf(states[:n]...)
}

// tcStringState is one TC string's answer; tc nil is a string that does not parse.
func (s *eventSignals) tcStringState(tc *signals.TCF, src *policy.ConsentSources, purpose string, dest *policy.Destination) signals.State {
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
	if tc == nil {
		return signals.Denied // unreadable is never granted
	}
	for _, n := range nums {
		states = append(states, boolState(tc.Purpose(n)))
	}
	if vendor > 0 {
		states = append(states, boolState(tc.Vendor(vendor)))
	}
	if google {
		m := signals.Google755(tc.Purpose)
		vendorOK := tc.Vendor(googleVendor)
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
	// five): an array, not a slice, as choose runs several times per decision.
	srcs [5]string
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
		c.state = signals.Merge(c.state, st)
	}
	if v, ok := d.ev.Consent[purpose]; ok {
		add(SourceEvent, boolState(v))
	}
	if s := d.sig; s != nil {
		src := &d.pol.ConsentSources
		add(SourceTCF, s.tcfState(src, purpose, dest))
		add(SourceGPP, s.gppTCFState(src, purpose, dest))
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
		d.sig.gppTCFState(src, dest.Purpose, dest) == signals.Denied ||
		d.sig.gcmStateOf(src, dest.Purpose) == signals.Denied ||
		d.sig.cmpState(src, dest.Purpose) == signals.Denied
}

// pubRestricted is part of the "signals" rule: a TC string (or a TCF section of the GPP string)
// whose publisher restricts the destination's tcf_vendor_id with type 0 (not allowed) on a TCF
// purpose the destination's purpose maps to. The vendor may not process for that purpose, so
// the user's consent to it does not count (CONTRACT §9: blocked, no_consent).
func (d *decider) pubRestricted(dest *policy.Destination) bool {
	if d.sig == nil || dest.TCFVendorID == 0 {
		return false
	}
	for _, tc := range d.sig.tcs {
		for _, n := range d.pol.ConsentSources.TCF[dest.Purpose] {
			if tc.Restricted(n, signals.RestrictNotAllowed, dest.TCFVendorID) {
				return true
			}
		}
	}
	return false
}

// gppOptedOut is the "gpp" rule: an applicable US section of the GPP string says the user opted
// out of sale, sharing or targeted advertising, or carries GPC (or cannot be read).
func (d *decider) gppOptedOut() bool {
	return d.sig != nil && (d.sig.gppBad || (d.sig.gpp != nil && d.sig.gpp.OptedOut()))
}

// gppSensitiveRefused is the hook of the "sensitive" rule: an applicable US section refuses
// processing of sensitive data or of a known child's data (SensitiveDataProcessing or
// KnownChildSensitiveDataConsents says 1), or the GPP string cannot be fully read. Then a
// matching sensitive rule blocks every destination that is not necessary, not only marketing.
func (d *decider) gppSensitiveRefused() bool {
	s := d.sig
	return s != nil && (s.gppBad || (s.gpp != nil && (s.gpp.SensitiveRefused || len(s.gpp.Unreadable) > 0)))
}

// google755 is the vendor-755 reading of Consent Mode key from the TC strings present (the
// event's and the GPP string's TCF sections): ok is false when there is none; an unreadable
// one grants nothing.
func (s *eventSignals) google755(key string) (granted, ok bool) {
	if s.tcfBad {
		return false, true
	}
	for _, tc := range s.tcs {
		if signals.Google755(tc.Purpose)[key] != signals.Granted || !tc.Vendor(googleVendor) {
			return false, true
		}
	}
	return true, len(s.tcs) > 0
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
