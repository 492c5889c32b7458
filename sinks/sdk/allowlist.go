package sdk

import (
	"fmt"

	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/policy"
)

// CheckAllowedHost refuses a destination whose endpoint or url names a host outside
// delivery.allowed_hosts (config.Delivery.HostAllowed). The policy says where each destination
// sends; the config, which the operator controls, says where anything may be sent at all. A
// destination without an endpoint or url sends to its vendor's built-in public host, which is
// always allowed. Redirects are never followed (NewHTTPClient), so the host checked here is the
// only host a request reaches.
func CheckAllowedHost(d config.Delivery, dest *policy.Destination) error {
	for _, key := range []string{"endpoint", "url"} {
		raw, _ := dest.Config[key].(string)
		if raw == "" {
			continue
		}
		if host := config.HostOf(raw); !d.HostAllowed(host) {
			return &policy.FieldError{Field: ConfigField(dest, key), Reason: fmt.Sprintf(
				"host %q is not in delivery.allowed_hosts %v of the config", host, d.AllowedHosts)}
		}
	}
	return nil
}
