package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errSlowClient means the client let its outbound queue fill up.
var errSlowClient = errors.New("client did not read its events in time")

// bufPool holds the encode buffers of outbound events; the writer returns
// each buffer once the frame is written, so steady-state sending does not
// allocate.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // let oversize buffers go
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// outbox is a connection's bounded outbound queue. Enqueue never blocks: a
// client that stops reading sees its queue fill, and the session is failed
// instead of stalling the session loop or growing memory. A writer
// goroutine runs only while there is something to write, so an idle session
// costs no writer stack.
type outbox struct {
	conn         eventConn
	max          int
	writeTimeout time.Duration

	mu      sync.Mutex
	queue   []outItem
	spare   []outItem
	writing bool
	err     error         // first failure; nothing is queued after it
	failed  chan struct{} // closed when err is set
	idle    chan struct{} // non-nil while someone waits for the queue to drain
	wg      sync.WaitGroup
}

func newOutbox(conn eventConn, max int, writeTimeout time.Duration) *outbox {
	return &outbox{conn: conn, max: max, writeTimeout: writeTimeout, failed: make(chan struct{})}
}

// outItem is one queued event. Audio deltas carry the id of their response
// (so a barge-in can drop them before they are written) and may carry a
// clock the writer stamps when the first of them reaches the socket.
type outItem struct {
	b       *[]byte
	audioOf string
	written *firstWrite // stamped with the time of the first write, if set
}

// enqueue queues one encoded event, taking ownership of b.
func (o *outbox) enqueue(b *[]byte) error { return o.enqueueItem(outItem{b: b}) }

// enqueueAudio queues an audio event of response respID.
func (o *outbox) enqueueAudio(b *[]byte, respID string, written *firstWrite) error {
	return o.enqueueItem(outItem{b: b, audioOf: respID, written: written})
}

// dropAudio removes the queued, not yet written audio events of respID and
// returns how many it dropped.
func (o *outbox) dropAudio(respID string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	kept := o.queue[:0]
	dropped := 0
	for _, it := range o.queue {
		if it.audioOf == respID {
			putBuf(it.b)
			dropped++
			continue
		}
		kept = append(kept, it)
	}
	for i := len(kept); i < len(o.queue); i++ {
		o.queue[i] = outItem{}
	}
	o.queue = kept
	return dropped
}

func (o *outbox) enqueueItem(it outItem) error {
	b := it.b
	o.mu.Lock()
	if o.err != nil {
		o.mu.Unlock()
		putBuf(b)
		return o.err
	}
	if len(o.queue) >= o.max {
		o.failLocked(errSlowClient)
		o.mu.Unlock()
		putBuf(b)
		return errSlowClient
	}
	o.queue = append(o.queue, it)
	if !o.writing {
		o.writing = true
		o.wg.Add(1)
		go o.run()
	}
	o.mu.Unlock()
	return nil
}

func (o *outbox) failLocked(err error) {
	if o.err == nil {
		o.err = err
		close(o.failed)
	}
}

func (o *outbox) run() {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		if len(o.queue) == 0 || o.err != nil {
			for _, it := range o.queue {
				putBuf(it.b)
			}
			o.queue = o.queue[:0]
			o.writing = false
			if o.idle != nil {
				close(o.idle)
				o.idle = nil
			}
			o.mu.Unlock()
			return
		}
		batch := o.queue
		o.queue, o.spare = o.spare[:0], nil
		o.mu.Unlock()

		// Corked, a frame write only fills a buffer (uncork has its own
		// socket deadline), so it needs no context timer; otherwise each
		// batch gets the write timeout.
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if !o.conn.corked() {
			ctx, cancel = context.WithTimeout(ctx, o.writeTimeout)
		}
		var err error
		var wrote []*firstWrite // clocks to stamp once the batch is on the socket
		o.conn.cork()
		for i, it := range batch {
			if err == nil {
				err = o.conn.write(ctx, *it.b)
				if err == nil && it.written != nil && it.written.at.Load() == 0 {
					wrote = append(wrote, it.written)
				}
			}
			putBuf(it.b)
			batch[i] = outItem{}
		}
		if uerr := o.conn.uncork(o.writeTimeout); err == nil {
			err = uerr
		}
		if err == nil {
			now := time.Now().UnixNano()
			for _, w := range wrote {
				w.stamp(now)
			}
		}
		cancel()
		o.mu.Lock()
		o.spare = batch[:0]
		if err != nil {
			o.failLocked(err)
		}
		o.mu.Unlock()
	}
}

// flush waits until everything queued so far is written, the outbox has
// failed, or ctx is done.
func (o *outbox) flush(ctx context.Context) error {
	o.mu.Lock()
	if !o.writing {
		err := o.err
		o.mu.Unlock()
		return err
	}
	if o.idle == nil {
		o.idle = make(chan struct{})
	}
	idle := o.idle
	o.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// stop refuses further events and waits for the writer to exit. The caller
// closes the connection first if it must not wait for a stuck write (the
// write timeout bounds the wait otherwise).
func (o *outbox) stop(err error) {
	o.mu.Lock()
	o.failLocked(err)
	o.mu.Unlock()
	o.wg.Wait()
}
