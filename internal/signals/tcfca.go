package signals

import (
	"errors"
	"strings"
)

// The Canadian TCF section of GPP (tcfcav1, id 5), as IAB's encoder writes it (@iabgpp/cmpapi
// 3.2.0, segment/TcfCaV1CoreSegment.js). Only the core segment is read: the fixed-width fields
// below, then the vendors' express and implied consents and the publisher restrictions.

// tcfCAHead is the core segment up to the vendor consents.
var tcfCAHead = []field{
	f("Version", 6, 1), f("Created", 36, 1), f("LastUpdated", 36, 1), f("CmpId", 12, 1),
	f("CmpVersion", 12, 1), f("ConsentScreen", 6, 1), f("ConsentLanguage", 6, 2),
	f("VendorListVersion", 12, 1), f("TcfPolicyVersion", 6, 1), f("UseNonStandardStacks", 1, 1),
	f("SpecialFeatureExpressConsent", 1, 12), f("PurposesExpressConsent", 1, 24),
	f("PurposesImpliedConsent", 1, 24),
}

type tcfCA struct {
	purposes      uint32 // bit n-1: express consent for purpose n
	vendors       idSet  // express consent
	restrictions  []restriction
	policyVersion int
}

type restriction struct {
	purpose, typ int
	vendors      idSet
}

func parseTCFCA(body string) (TCF, error) {
	var core string
	for _, seg := range strings.Split(body, ".") {
		// The core segment starts with its version (1: A–H); the others with their type.
		if seg != "" && seg[0] >= 'A' && seg[0] <= 'H' {
			core = seg
			break
		}
	}
	if core == "" {
		return TCF{}, errors.New("no core segment")
	}
	// IAB's encoder wrote the vendor ranges with fixed-width ids before it followed the
	// specification's Fibonacci ones; like IAB's decoder, take the Fibonacci reading when it
	// accounts for every bit, else the older one.
	ca, err := readTCFCA(core, false)
	if err != nil {
		if ca, err = readTCFCA(core, true); err != nil {
			return TCF{}, err
		}
	}
	return TCF{raw: body, ca: ca}, nil
}

func readTCFCA(core string, legacy bool) (*tcfCA, error) {
	r, err := newBitReader(core)
	if err != nil {
		return nil, err
	}
	ca := &tcfCA{}
	version := 0
	err = readFields(r, tcfCAHead, func(f *field, i, v int) {
		switch f.name {
		case "Version":
			version = v
		case "TcfPolicyVersion":
			ca.policyVersion = v
		case "PurposesExpressConsent":
			ca.purposes |= uint32(v) << i
		}
	})
	if err != nil {
		return nil, err
	}
	if version != 1 {
		return &tcfCA{}, nil // a version tollgate cannot read grants nothing
	}
	if ca.vendors, err = r.optimizedRange(legacy); err != nil {
		return nil, errors.New("VendorExpressConsent: " + err.Error())
	}
	if _, err = r.optimizedRange(legacy); err != nil {
		return nil, errors.New("VendorImpliedConsent: " + err.Error())
	}
	if r.left() >= 12 { // the restrictions may be left out
		if ca.restrictions, err = readRestrictions(r, legacy); err != nil {
			return nil, errors.New("PubRestrictions: " + err.Error())
		}
	}
	if !r.rest() {
		return nil, errors.New("bits left after the last field")
	}
	return ca, nil
}

// readRestrictions reads a 12-bit count of (6-bit purpose, 2-bit type, vendor range) entries.
func readRestrictions(r *bitReader, legacy bool) ([]restriction, error) {
	n, err := r.int(12)
	if err != nil {
		return nil, err
	}
	var out []restriction
	for i := 0; i < n; i++ {
		var rs restriction
		if rs.purpose, err = r.int(6); err != nil {
			return nil, err
		}
		if rs.typ, err = r.int(2); err != nil {
			return nil, err
		}
		if legacy {
			rs.vendors, err = r.fixedRange()
		} else {
			rs.vendors, err = r.optimizedRange(false)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs)
	}
	return out, nil
}
