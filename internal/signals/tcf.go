package signals

import (
	"errors"
	"fmt"

	"github.com/prebid/go-gdpr/api"
	"github.com/prebid/go-gdpr/consentconstants"
	tcf2 "github.com/prebid/go-gdpr/vendorconsent/tcf2"
)

// TCFPurposes is the highest IAB TCF v2.2 purpose number (1–11).
const TCFPurposes = 11

// TCF is a parsed IAB TCF v2 TC string (core segment; publisher restrictions
// and the disclosed-vendors segment are read by the library but not used).
type TCF struct {
	raw string
	vc  api.VendorConsents
}

// ParseTCF parses a TC string with prebid/go-gdpr. Only TCF v2 strings are
// accepted: a v1 string (the library would fall back to its v1 parser) is
// refused, because v1 has no purpose bits with TCF v2.2 meanings.
func ParseTCF(s string) (TCF, error) {
	if s == "" {
		return TCF{}, errors.New("consent_signals.tcf: empty TC string")
	}
	if !tcf2.IsConsentV2(s) {
		return TCF{}, errors.New("consent_signals.tcf: not a TCF v2 TC string")
	}
	vc, err := parseTCF2(s)
	if err != nil {
		return TCF{}, fmt.Errorf("consent_signals.tcf: %w", err)
	}
	return TCF{raw: s, vc: vc}, nil
}

// parseTCF2 guards the library call: a decoder panic on hostile input must
// become a 400, not a crashed ingest.
func parseTCF2(s string) (vc api.VendorConsents, err error) {
	defer func() {
		if r := recover(); r != nil {
			vc, err = nil, fmt.Errorf("unreadable TC string")
		}
	}()
	return tcf2.ParseString(s)
}

// Raw is the TC string as received (for the consent proof).
func (t TCF) Raw() string { return t.raw }

// Purpose reports whether purpose n (1–11) has the user's consent.
// Anything outside 1–11, or an unparsed TCF, is not consented.
func (t TCF) Purpose(n int) bool {
	if t.vc == nil || n < 1 || n > TCFPurposes {
		return false
	}
	return t.vc.PurposeAllowed(consentconstants.Purpose(n))
}

// Vendor reports whether the TC string carries consent for vendor id.
func (t TCF) Vendor(id int) bool {
	if t.vc == nil || id < 1 || id > 0xffff {
		return false
	}
	return t.vc.VendorConsent(uint16(id))
}

// PolicyVersion is the TCF policy version written by the CMP (4 for TCF v2.2).
func (t TCF) PolicyVersion() int {
	if t.vc == nil {
		return 0
	}
	return int(t.vc.TCFPolicyVersion())
}
