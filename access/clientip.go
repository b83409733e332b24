package access

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIPs tells the address of the client behind a request, for the
// per-IP rate limits. Without trusted proxies it is the connection's peer.
// When the peer is a trusted proxy (a load balancer), X-Forwarded-For is
// read from the right, skipping trusted proxies: the first address that is
// not one is the client (what a client writes to the left of it cannot
// be trusted, so it is never used).
type ClientIPs struct {
	trusted []netip.Prefix
}

// NewClientIPs parses trusted proxy addresses or CIDR ranges.
func NewClientIPs(trusted []string) (*ClientIPs, error) {
	c := &ClientIPs{}
	for _, t := range trusted {
		t = strings.TrimSpace(t)
		if p, err := netip.ParsePrefix(t); err == nil {
			c.trusted = append(c.trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(t)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an IP address or CIDR range", t)
		}
		c.trusted = append(c.trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return c, nil
}

func (c *ClientIPs) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the client address of r.
func (c *ClientIPs) Of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if c == nil || len(c.trusted) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !c.isTrusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a malformed hop: stop at the last trusted one
		}
		if !c.isTrusted(a) {
			return a.Unmap().String()
		}
		host = a.Unmap().String()
	}
	return host
}
