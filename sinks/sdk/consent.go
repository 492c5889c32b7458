package sdk

import (
	"github.com/tollgate-dev/tollgate/internal/policy"
	"github.com/tollgate-dev/tollgate/schemas"
)

// VendorConsent reports one of the vendor consent fields the consent processor derived for the
// event (schemas.Vendor*; docs/vendors.md "Consent fields"). A record decided before the
// processor derived them has none: Google's keys then follow the marketing grant, as they did
// before, and limited data use is assumed for every US state (the restrictive reading).
func VendorConsent(ev *schemas.FilteredEvent, key string) bool {
	if v, ok := ev.VendorConsent[key]; ok {
		return v
	}
	if key == schemas.VendorLimitedDataUse {
		_, us := policy.USState(ev.Jurisdiction)
		return us
	}
	return ev.Consent[policy.Marketing]
}

// LDUAuto reports whether a destination asks for limited data use derived per event: `ldu: auto`
// on the destination (validated with the policy) or in its config (configLDU, the adapter's own
// field, validated here).
func LDUAuto(dest *policy.Destination, configLDU string) (bool, error) {
	switch configLDU {
	case "", policy.LDUAuto, policy.LDUOff:
	default:
		return false, ConfigError(dest, "ldu", "must be %q or %q, not %q", policy.LDUAuto, policy.LDUOff, configLDU)
	}
	return dest.LDU == policy.LDUAuto || configLDU == policy.LDUAuto, nil
}
