package access

import (
	"net/http"
	"testing"
)

func TestClientIPs(t *testing.T) {
	c, err := NewClientIPs([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote, xff, want string
	}{
		{"direct client", "203.0.113.9:5000", "", "203.0.113.9"},
		{"direct client forging the header", "203.0.113.9:5000", "1.2.3.4", "203.0.113.9"},
		{"behind the load balancer", "10.1.2.3:5000", "203.0.113.9", "203.0.113.9"},
		{"two trusted hops", "10.1.2.3:5000", "203.0.113.9, 192.0.2.1", "203.0.113.9"},
		{"client-written hops to the left are ignored", "10.1.2.3:5000", "1.2.3.4, 203.0.113.9", "203.0.113.9"},
		{"trusted proxy without a header", "10.1.2.3:5000", "", "10.1.2.3"},
		{"malformed hop", "10.1.2.3:5000", "203.0.113.9, garbage", "10.1.2.3"},
		{"IPv4-mapped IPv6", "[::ffff:10.1.2.3]:5000", "2001:db8::7", "2001:db8::7"},
	}
	for _, tc := range cases {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := c.Of(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := NewClientIPs([]string{"not-an-ip"}); err == nil {
		t.Error("accepted a bad trusted proxy")
	}
	var none *ClientIPs
	if got := none.Of(&http.Request{RemoteAddr: "203.0.113.9:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "203.0.113.9" {
		t.Errorf("no trusted proxies: %q", got)
	}
}
