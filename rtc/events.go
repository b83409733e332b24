package rtc

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pion/datachannel"
)

// EventsLabel is the label of the data channel carrying Realtime events
// (the OpenAI Realtime WebRTC flow). Channels with other labels are closed.
const EventsLabel = "oai-events"

var (
	// ErrMessageTooLarge is matched (errors.Is) by the *MessageTooLargeError
	// EventChannel.Read returns for a message larger than its buffer.
	ErrMessageTooLarge = errors.New("rtc: data channel message too large")
	// ErrNotReady is returned by WriteText before the channel is open.
	ErrNotReady = errors.New("rtc: data channel not open")
	// ErrCallEnded is returned by WriteText once the call has ended.
	ErrCallEnded = errors.New("rtc: call ended")
)

// MessageTooLargeError reports a message larger than the Read buffer. The
// message has been consumed and dropped: the next Read returns the next
// message.
type MessageTooLargeError struct {
	Size   int // the message's size
	Buffer int // the buffer given to Read
}

func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("rtc: data channel message of %d bytes larger than the %d-byte buffer", e.Size, e.Buffer)
}

// Is makes errors.Is(err, ErrMessageTooLarge) true.
func (e *MessageTooLargeError) Is(target error) bool { return target == ErrMessageTooLarge }

// errChannelBroken: a message exceeded even the announced maximum size
// (only a non-browser peer can do that); the channel was closed.
var errChannelBroken = errors.New("rtc: data channel closed after a message over a=max-message-size")

// EventChannel is the call's detached "oai-events" data channel. One
// goroutine may Read while others WriteText; BufferedAmount and Ready are
// safe from any goroutine.
type EventChannel struct {
	ready chan struct{} // closed by attach
	ended chan struct{} // closed by end
	max   int           // the announced a=max-message-size

	mu       sync.Mutex
	dc       datachannel.ReadWriteCloser // set once, before ready is closed
	isEnded  bool
	endOnce  sync.Once
	scratch  []byte // Read only: drains oversized messages
	isBroken bool   // Read only
}

func newEventChannel(maxMessage int) *EventChannel {
	return &EventChannel{ready: make(chan struct{}), ended: make(chan struct{}), max: maxMessage}
}

// Ready is closed once the browser's oai-events channel is open. It is
// never closed if the browser offers no data channel, or the call ends
// first.
func (ec *EventChannel) Ready() <-chan struct{} { return ec.ready }

// attach hands over the detached channel; false if the call has ended or
// a channel is already attached (the caller closes dc).
func (ec *EventChannel) attach(dc datachannel.ReadWriteCloser) bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.isEnded || ec.dc != nil {
		return false
	}
	ec.dc = dc
	close(ec.ready)
	return true
}

// end marks the call over: Read returns io.EOF, WriteText ErrCallEnded.
// The channel itself is closed with the peer connection's SCTP
// association.
func (ec *EventChannel) end() {
	ec.endOnce.Do(func() {
		ec.mu.Lock()
		ec.isEnded = true
		ec.mu.Unlock()
		close(ec.ended)
	})
}

func (ec *EventChannel) hasEnded() bool {
	select {
	case <-ec.ended:
		return true
	default:
		return false
	}
}

// Read blocks until the channel is open, then reads one message into p
// (the caller's buffer, reused across calls) and reports whether it was
// text (PPID string) rather than binary.
//
// A message larger than p returns a *MessageTooLargeError (errors.Is
// ErrMessageTooLarge) and is dropped; the stream stays usable and the next
// Read returns the next message. (pion/sctp leaves a message that does
// not fit in the queue and returns io.ErrShortBuffer, so the same Read
// would fail forever; Read drains it into a buffer of the announced
// maximum message size, allocated on the first oversized message.)
//
// Read returns io.EOF once the channel is over: the call ended, the
// browser closed the channel, or the SCTP association was closed or
// aborted (every read error but a short buffer means that). Only one
// goroutine may Read at a time.
func (ec *EventChannel) Read(p []byte) (n int, isText bool, err error) {
	select {
	case <-ec.ready:
	case <-ec.ended:
		return 0, false, io.EOF
	}
	if ec.hasEnded() { // ready too: messages still queued are not delivered
		return 0, false, io.EOF
	}
	if ec.isBroken {
		return 0, false, errChannelBroken
	}
	n, isText, err = ec.dc.ReadDataChannel(p)
	switch {
	case err == nil:
		return n, isText, nil
	case errors.Is(err, io.ErrShortBuffer):
		return ec.drain(p)
	}
	return 0, false, io.EOF
}

// ReadMessage reads one whole message like Read, into buf (reused: the
// message is buf[:n] of the returned slice), growing buf while the message
// does not fit, up to the announced maximum message size. A call whose
// events are small keeps a small buffer.
func (ec *EventChannel) ReadMessage(buf []byte) ([]byte, bool, error) {
	select {
	case <-ec.ready:
	case <-ec.ended:
		return buf[:0], false, io.EOF
	}
	if ec.hasEnded() {
		return buf[:0], false, io.EOF
	}
	if ec.isBroken {
		return buf[:0], false, errChannelBroken
	}
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(4096, ec.max))
	}
	for {
		n, isText, err := ec.dc.ReadDataChannel(buf[:cap(buf)])
		switch {
		case err == nil:
			return buf[:n], isText, nil
		case !errors.Is(err, io.ErrShortBuffer):
			return buf[:0], false, io.EOF
		case cap(buf) >= ec.max:
			n, isText, err := ec.drain(buf[:cap(buf)])
			return buf[:n], isText, err
		}
		// pion keeps a message that did not fit queued: read it again
		// into a bigger buffer.
		buf = make([]byte, 0, min(2*cap(buf), ec.max))
	}
}

// drain consumes the message that did not fit in p.
func (ec *EventChannel) drain(p []byte) (int, bool, error) {
	if ec.scratch == nil {
		ec.scratch = make([]byte, ec.max)
	}
	n, isText, err := ec.dc.ReadDataChannel(ec.scratch)
	switch {
	case err == nil && n <= len(p):
		// The short read was a control message pion handles itself; this
		// is the next user message, and it fits.
		return copy(p, ec.scratch[:n]), isText, nil
	case err == nil:
		return 0, false, &MessageTooLargeError{Size: n, Buffer: len(p)}
	case errors.Is(err, io.ErrShortBuffer):
		ec.isBroken = true
		_ = ec.dc.Close()
		return 0, false, errChannelBroken
	}
	return 0, false, io.EOF
}

// WriteText sends p as one text message (PPID string: the browser's
// event.data is a string). p is copied before WriteText returns. It does
// not wait: before the channel is open it returns ErrNotReady (wait on
// Ready), after the call ended ErrCallEnded. It does not block on a slow
// browser either: the message is queued in SCTP; watch BufferedAmount.
func (ec *EventChannel) WriteText(p []byte) error {
	if ec.hasEnded() {
		return ErrCallEnded
	}
	select {
	case <-ec.ready:
	default:
		return ErrNotReady
	}
	if _, err := ec.dc.WriteDataChannel(p, true); err != nil {
		if ec.hasEnded() {
			return ErrCallEnded
		}
		return fmt.Errorf("rtc: data channel write: %w", err)
	}
	return nil
}

// BufferedAmount returns the bytes written and not yet acknowledged by the
// browser (0 before the channel is open): a growing value means the
// browser, or its network, does not keep up.
func (ec *EventChannel) BufferedAmount() uint64 {
	select {
	case <-ec.ready:
	default:
		return 0
	}
	if b, ok := ec.dc.(interface{ BufferedAmount() uint64 }); ok {
		return b.BufferedAmount()
	}
	return 0
}
