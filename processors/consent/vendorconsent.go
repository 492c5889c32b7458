package consent

import (
	"maps"

	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/internal/signals"
	"github.com/tollgate-dev/tollgate/schemas"
)

// Vendors' own consent fields, derived from the decision and carried on every filtered event
// (docs/vendors.md "Consent fields"); the adapters only translate them into each vendor's terms.

// vendorConsent derives the vendor consent fields from the effective consent of the event:
//   - Google's ad_user_data and ad_personalization: the marketing grant, narrowed by what the
//     CMP said of that key — its Consent Mode state when it sent one, else Google's own reading of
//     a TC string (purposes 1 and 7, 3 and 4, with vendor 755's consent). A key only ever
//     narrows: no signal can grant what marketing does not. An opt-out of sale or sharing (GPC,
//     or a GPP string's opt-out) denies both, as ads use of the data is what it opts out of.
//   - limited_data_use: the user is under a US state's opt-out law (a `US-<state>` jurisdiction
//     whose model is opt_out), which is what Meta's and TikTok's restricted modes are for.
func (d *decider) vendorConsent(consent map[string]bool) map[string]bool {
	if d.vendor == nil { // the same for every destination: worked out once per event
		marketing := consent[policy.Marketing] && !d.ev.GPC && !d.gppOptedOut()
		_, usState := policy.USState(d.jurisdiction)
		d.vendor = map[string]bool{
			schemas.VendorAdUserData:        marketing && d.googleKey(schemas.VendorAdUserData),
			schemas.VendorAdPersonalization: marketing && d.googleKey(schemas.VendorAdPersonalization),
			schemas.VendorLimitedDataUse:    d.model == policy.OptOut && usState,
		}
	}
	return maps.Clone(d.vendor) // each FilteredEvent gets its own map, as with the consent map
}

// googleKey reports whether the CMP's signals leave one of Google's consent keys granted: the
// Consent Mode state of the key if it was sent (only "granted" grants), else the vendor-755
// reading of the TC strings if there are any (the event's and the GPP string's TCF sections; an
// unreadable one grants nothing), else true — no
// signal about the key, so the marketing grant alone decides.
func (d *decider) googleKey(key string) bool {
	s := d.sig
	if s == nil {
		return true
	}
	if st, ok := s.gcm[key]; ok {
		return st == signals.Granted
	}
	if granted, ok := s.google755(key); ok {
		return granted
	}
	return true
}
