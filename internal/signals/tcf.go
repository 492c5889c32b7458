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

// RestrictNotAllowed is the TCF publisher restriction type 0: the vendor may not process data
// for the purpose at all.
const RestrictNotAllowed = 0

// TCF is a parsed TC string: an EU TCF v2 string (consent_signals.tcf, or a GPP string's
// tcfeuv2 section), read with prebid/go-gdpr, or a GPP string's Canadian tcfcav1 section
// (tcfca.go). The disclosed-vendors and publisher-purposes segments are not used.
type TCF struct {
	raw string
	vc  api.VendorConsents // EU
	ca  *tcfCA             // Canada
}

// ParseTCF parses a TC string with prebid/go-gdpr. Only TCF v2 strings are accepted: a v1
// string (the library would fall back to its v1 parser) is refused, because v1 has no purpose
// bits with TCF v2.2 meanings. Errors are *FieldError with Field "tcf".
func ParseTCF(s string) (TCF, error) {
	tc, err := parseTCF(s)
	if err != nil {
		return TCF{}, fieldErr("tcf", "%v", err)
	}
	return tc, nil
}

func parseTCF(s string) (TCF, error) {
	if s == "" {
		return TCF{}, errors.New("empty TC string")
	}
	if !tcf2.IsConsentV2(s) {
		return TCF{}, errors.New("not a TCF v2 TC string")
	}
	vc, err := parseTCF2(s)
	if err != nil {
		return TCF{}, err
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

// Purpose reports whether purpose n (1–11) has the user's consent (for tcfcav1: express
// consent; implied consent is the CMP's inference, not the user's choice).
// Anything outside 1–11, or an unparsed TCF, is not consented.
func (t TCF) Purpose(n int) bool {
	if n < 1 || n > TCFPurposes {
		return false
	}
	switch {
	case t.vc != nil:
		return t.vc.PurposeAllowed(consentconstants.Purpose(n))
	case t.ca != nil:
		return t.ca.purposes&(1<<(n-1)) != 0
	}
	return false
}

// Vendor reports whether the TC string carries consent for vendor id (tcfcav1: express consent).
func (t TCF) Vendor(id int) bool {
	if id < 1 || id > 0xffff {
		return false
	}
	switch {
	case t.vc != nil:
		return t.vc.VendorConsent(uint16(id))
	case t.ca != nil:
		return t.ca.vendors.has(id)
	}
	return false
}

// pubRestrictions is what go-gdpr's TCF v2 metadata offers for publisher restrictions.
type pubRestrictions interface {
	CheckPubRestriction(purposeID uint8, restrictType uint8, vendor uint16) bool
}

// Restricted reports whether the publisher restricts vendor id on purpose n with restriction
// type typ (RestrictNotAllowed: the vendor may not process for the purpose, whatever the user
// consented to).
func (t TCF) Restricted(n, typ, id int) bool {
	if n < 1 || n > 63 || typ < 0 || typ > 3 || id < 1 || id > 0xffff {
		return false
	}
	switch {
	case t.vc != nil:
		pr, ok := t.vc.(pubRestrictions)
		return ok && pr.CheckPubRestriction(uint8(n), uint8(typ), uint16(id))
	case t.ca != nil:
		for _, r := range t.ca.restrictions {
			if r.purpose == n && r.typ == typ && r.vendors.has(id) {
				return true
			}
		}
	}
	return false
}

// PolicyVersion is the TCF policy version written by the CMP (4 for TCF v2.2).
func (t TCF) PolicyVersion() int {
	switch {
	case t.vc != nil:
		return int(t.vc.TCFPolicyVersion())
	case t.ca != nil:
		return t.ca.policyVersion
	}
	return 0
}
