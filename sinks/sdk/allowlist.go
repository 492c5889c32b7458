package sdk

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// CheckAllowedHost refuses a destination whose endpoint or url names a host outside allowed, the
// config's delivery.allowed_hosts (the command passes it in: the sdk, and so every vendor, stays
// free of the config package). The policy says where each destination sends; the config, which
// the operator controls, says where anything may be sent at all. A destination without an
// endpoint or url sends to its vendor's built-in public host, which is always allowed. Redirects
// are never followed (NewHTTPClient), so the host checked here is the only host a request
// reaches.
func CheckAllowedHost(allowed []string, dest *policy.Destination) error {
	for _, key := range []string{"endpoint", "url"} {
		raw, _ := dest.Config[key].(string)
		if raw == "" {
			continue
		}
		if host := hostOf(raw); !HostAllowed(allowed, host) {
			return &policy.FieldError{Field: ConfigField(dest, key), Reason: fmt.Sprintf(
				"host %q is not in delivery.allowed_hosts %v of the config", host, allowed)}
		}
	}
	return nil
}

// HostAllowed reports whether a destination may send to host under allowed
// (delivery.allowed_hosts, whose entries the config checked to be host names or "*.domain"):
// any host when the list is empty; else an exact (case-insensitive) match, or a "*.domain" entry
// that matches any subdomain of domain (not domain itself).
func HostAllowed(allowed []string, host string) bool {
	if len(allowed) == 0 {
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, a := range allowed {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// hostOf returns the host of an absolute URL, or "".
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
