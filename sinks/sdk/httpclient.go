package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/internal/policy"
)

// ErrPrivateAddress is returned (wrapped) when a destination would reach an address the SSRF
// guard refuses. The runner names it in its transport-failure reason.
var ErrPrivateAddress = errors.New("address is loopback, private, link-local, CGNAT or unspecified")

// refused are the networks no destination may reach unless its policy sets
// allow_private_network: true. A vendor base URL comes from a policy file, and a webhook URL is
// anything the operator typed: without this list, "url: http://169.254.169.254/latest/meta-data"
// would make tollgate fetch cloud credentials for whoever can edit the policy.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network", includes the unspecified 0.0.0.0
	netip.MustParsePrefix("10.0.0.0/8"),         // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),      // CGNAT (RFC 6598): often the cloud's internal network
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local, cloud metadata services
	netip.MustParsePrefix("172.16.0.0/12"),      // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"),     // RFC 1918
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("fc00::/7"),           // unique local
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast: never a vendor
	netip.MustParsePrefix("ff00::/8"),           // multicast
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// RefusedAddress reports whether the SSRF guard refuses ip. IPv4-mapped IPv6 addresses
// (::ffff:10.0.0.1) are judged as the IPv4 address they carry.
func RefusedAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range refused {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AllowPrivateNetwork reports whether the destination's config sets allow_private_network: true
// (tests and demos talking to loopback stand-ins, or a proxy inside the cluster).
func AllowPrivateNetwork(dest *policy.Destination) bool {
	v, _ := dest.Config["allow_private_network"].(bool)
	return v
}

// NewHTTPClient returns the client a destination's requests go through.
//
//   - It never follows redirects: the 3xx reaches Classify (and is a failure there). Following
//     would let a vendor, or whoever controls a webhook URL, bounce tollgate to an internal host.
//   - Unless the destination allows private networks, every connection is checked after DNS
//     resolution, in the dialer's Control hook, so DNS rebinding (a public name that later
//     resolves to 10.0.0.1) is caught too: CheckAddress at start is not enough on its own.
//   - It ignores HTTP(S)_PROXY: through a proxy, the guard would check the proxy's address and
//     the proxy would connect anywhere. Put a proxy in the policy's endpoint instead.
//
// timeout bounds a whole request including reading the body; 0 means no limit (the caller's
// context must then bound it). inFlight is the most requests the caller has in flight at once
// (delivery.concurrency): as many connections stay open for reuse, since a pool smaller than that
// closes and redials connections on every request. Each destination gets its own client and
// connection pool, so a slow vendor cannot exhaust connections another vendor needs.
func NewHTTPClient(dest *policy.Destination, timeout time.Duration, inFlight int) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !AllowPrivateNetwork(dest) {
		dialer.Control = guardControl
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = dialer.DialContext
	tr.MaxIdleConnsPerHost = max(inFlight, 2) // the runner sends concurrent batches to one host
	tr.MaxIdleConns = max(inFlight, tr.MaxIdleConns)
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// guardControl runs after the address is resolved and before the socket connects.
func guardControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("ssrf guard: unparsable address %q: %w", address, ErrPrivateAddress)
	}
	if RefusedAddress(ap.Addr()) {
		return fmt.Errorf("ssrf guard: %s: %w", ap.Addr(), ErrPrivateAddress)
	}
	return nil
}

// CheckAddress resolves the host of the destination's endpoint (config "endpoint", or "url" for
// webhooks) and returns an error naming the config field if any of its addresses is refused, so a
// bad policy fails at start rather than at the first event. A destination without either key
// uses its vendor's public default, which needs no check here (the dial-time guard still runs).
// Resolution failures are errors too: a destination that cannot be resolved at start is
// half-configured.
func CheckAddress(dest *policy.Destination) error {
	if AllowPrivateNetwork(dest) {
		return nil
	}
	key, raw := "endpoint", ""
	for _, k := range []string{"endpoint", "url"} {
		if s, ok := dest.Config[k].(string); ok && s != "" {
			key, raw = k, s
			break
		}
	}
	if raw == "" {
		return nil
	}
	field := ConfigField(dest, key)
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return &policy.FieldError{Field: field, Reason: fmt.Sprintf("%q is not an absolute URL", raw)}
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return &policy.FieldError{Field: field, Reason: fmt.Sprintf("cannot resolve %s: %v", host, err)}
		}
	}
	for _, ip := range addrs {
		if RefusedAddress(ip) {
			return &policy.FieldError{Field: field, Reason: fmt.Sprintf(
				"%s resolves to %s, which is loopback, private, link-local, CGNAT or unspecified (set allow_private_network: true to allow it)",
				host, ip.Unmap())}
		}
	}
	return nil
}
