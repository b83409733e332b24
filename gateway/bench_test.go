package gateway

import (
	"testing"

	"parley/realtime"
)

// BenchmarkTextTurn measures one text turn (user item, response.create,
// the whole response) through the real server and a real WebSocket client,
// with a zero-latency agent and an in-memory store.
func BenchmarkTextTurn(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi ", "there ", "friend."}}, nil)
	defer func() { _ = h.gw.Close(); h.srv.Close() }()
	c, _, err := h.dial("?model=assistant", nil)
	if err != nil {
		b.Fatal(err)
	}
	c.t = t
	c.next()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.send(userHello)
		c.send(`{"type":"response.create"}`)
		for {
			ev, err := c.read(5e9)
			if err != nil {
				b.Fatal(err)
			}
			if ev["type"] == realtime.TypeResponseDone {
				break
			}
		}
	}
}
