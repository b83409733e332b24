package gateway

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/coder/websocket"
)

// eventConn is one connection carrying realtime events: a WebSocket
// (clients, and sidebands attached to a WebRTC call) or a call's
// "oai-events" data channel. The session engine is written against it and
// does not know which it has.
type eventConn interface {
	// read blocks for the next client message and returns it appended to
	// buf (which it may grow), and whether it was a text message. It
	// returns an error once the client is gone.
	read(buf []byte) ([]byte, bool, error)
	// write sends one event. Between cork and uncork, writes may be
	// collected and sent together by uncork.
	write(ctx context.Context, b []byte) error
	cork()
	uncork(timeout time.Duration) error
	// corked reports whether writes only fill a buffer (so they need no
	// deadline of their own).
	corked() bool
	// close ends the connection gracefully with a WebSocket close code (a
	// data channel has none: its call ends).
	close(code websocket.StatusCode, reason string) error
	// closeNow ends the connection without a handshake.
	closeNow() error
}

// wsConn is an eventConn over coder/websocket.
type wsConn struct {
	c  *websocket.Conn
	cc *corkConn // nil when the connection was not hijacked through hijackRW
}

func (w *wsConn) read(buf []byte) ([]byte, bool, error) {
	// Reads take no context: a cancelled read context would make the
	// WebSocket library drop the connection without a close handshake.
	typ, r, err := w.c.Reader(context.Background())
	if err != nil {
		return buf, false, err
	}
	buf, err = readInto(buf, r)
	return buf, typ == websocket.MessageText, err
}

func (w *wsConn) write(ctx context.Context, b []byte) error {
	return w.c.Write(ctx, websocket.MessageText, b)
}

func (w *wsConn) cork() {
	if w.cc != nil {
		w.cc.cork()
	}
}

func (w *wsConn) uncork(timeout time.Duration) error {
	if w.cc == nil {
		return nil
	}
	return w.cc.uncork(timeout)
}

func (w *wsConn) corked() bool { return w.cc != nil }

func (w *wsConn) close(code websocket.StatusCode, reason string) error {
	return w.c.Close(code, reason)
}

func (w *wsConn) closeNow() error { return w.c.CloseNow() }

func readInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// errMessageTooLarge is what an eventConn's read returns for a message it
// cannot take whole; the connection stays usable.
var errMessageTooLarge = errors.New("message too large")
