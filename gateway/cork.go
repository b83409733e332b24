package gateway

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffers of a hijacked WebSocket connection. coder/websocket keeps the
// bufio.Reader and Writer it gets from the hijack for the connection's life:
// net/http's 4 KiB each would be most of an idle session's memory. Reads of
// larger messages still work (bufio reads through); writes go through the
// cork, so a small write buffer costs nothing.
const (
	wsReadBuffer  = 1024
	wsWriteBuffer = 64
)

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// corkConn lets the outbox write a whole batch of WebSocket frames with one
// system call: while corked, writes collect in a pooled buffer that uncork
// sends at once. Outside a batch (handshake, close, pongs) writes go straight
// to the socket.
type corkConn struct {
	net.Conn
	pre    []byte // bytes the HTTP server had read past the handshake
	mu     sync.Mutex
	corked bool
	buf    *[]byte
}

func (c *corkConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.buf = corkPool.Get().(*[]byte)
	c.mu.Unlock()
}

// uncork writes what collected, within timeout.
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err = c.Conn.Write(*b)
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		corkPool.Put(b)
	}
	return err
}

// hijackRW hands coder/websocket a corkConn with small buffers when it
// hijacks the connection.
type hijackRW struct {
	http.ResponseWriter
	cc *corkConn
}

func (h *hijackRW) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	h.cc = &corkConn{Conn: nc}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		h.cc.pre = bytes.Clone(b)
	}
	return h.cc, bufio.NewReadWriter(bufio.NewReaderSize(h.cc, wsReadBuffer), bufio.NewWriterSize(h.cc, wsWriteBuffer)), nil
}
