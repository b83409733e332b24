package rtc

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/rtp"

	"parley/media"
)

// PlaybackType says what a PlaybackEvent reports.
type PlaybackType int

const (
	// PlaybackStarted: the first packet of a tag was written to the track.
	PlaybackStarted PlaybackType = iota + 1
	// PlaybackStopped: the player reached the tag's EndOf mark, one frame
	// (20 ms) after writing its last packet.
	PlaybackStopped
)

func (t PlaybackType) String() string {
	switch t {
	case PlaybackStarted:
		return "started"
	case PlaybackStopped:
		return "stopped"
	}
	return "unknown"
}

// PlaybackEvent is reported to CallOptions.OnPlayback.
type PlaybackEvent struct {
	Type PlaybackType
	Tag  string
	At   time.Time
}

const (
	// FrameDuration is the duration of every packet given to Play, and the
	// player's pace.
	FrameDuration = 20 * time.Millisecond
	// MaxQueuedAudio bounds a call's playback queue: Play returns false
	// beyond it.
	MaxQueuedAudio = 60 * time.Second

	frameMS          = 20
	frameTicks       = 960 // RTP clock units (48 kHz) per packet
	maxQueuedPackets = int(MaxQueuedAudio / FrameDuration)
	maxQueuedMarks   = 1024
	maxBurst         = 5 // most packets written at one tick when catching up (100 ms)
	recentTags       = 16
)

// rtpWriter is what the player writes to: the call's TrackLocalStaticRTP.
type rtpWriter interface {
	WriteRTP(*rtp.Packet) error
}

// qentry is one queued packet, or an EndOf mark (buf == nil).
type qentry struct {
	tag string
	buf *[]byte
	n   int
}

// tagStat is what the player knows about a tag it wrote.
type tagStat struct {
	tag     string
	packets int  // packets written (dequeued for writing)
	started bool // Started emitted
	ended   bool // Stopped emitted, or the tag was cleared
}

// player paces outbound Opus packets onto the call's track. Its goroutine
// exists only while something is queued: Play starts it, it exits at the
// first tick that finds the queue empty. It waits for the call to be
// connected before writing: pion drops writes before DTLS is up, and once
// DTLS is connected (which the connected state implies) the first write
// starts SRTP itself (srtpWriterFuture -> wantSRTP), so nothing is lost.
type player struct {
	w         rtpWriter
	onEvent   func(PlaybackEvent)
	connected <-chan struct{}
	spawn     func(func()) bool // starts a goroutine the call waits for
	stop      chan struct{}     // closed by close

	mu      sync.Mutex
	q       []qentry // ring buffer
	head    int
	count   int
	packets int // queued packets (count minus marks)
	marks   int
	running bool // a player goroutine exists
	closed  bool
	restart bool // Clear happened: the next packet starts a talkspurt
	curTag  string
	stats   [recentTags]tagStat
	nextSt  int

	// Owned by the (single) player goroutine; handed from one goroutine to
	// the next through mu (running).
	pkt       rtp.Packet
	sent      bool
	lastWrite time.Time
	events    []PlaybackEvent
}

func newPlayer(w rtpWriter, onEvent func(PlaybackEvent), connected <-chan struct{}, spawn func(func()) bool) *player {
	p := &player{w: w, onEvent: onEvent, connected: connected, spawn: spawn, stop: make(chan struct{})}
	p.pkt.Version = 2
	p.pkt.PayloadType = 111 // the track binding sets the negotiated type and SSRC
	p.pkt.SequenceNumber = uint16(rand.Uint32())
	p.pkt.Timestamp = rand.Uint32()
	p.events = make([]PlaybackEvent, 0, 4)
	return p
}

// play queues one 20 ms packet; see Call.Play.
func (p *player) play(tag string, packet []byte) bool {
	if len(packet) == 0 || len(packet) > media.OpusMaxPacketSize {
		return false
	}
	if n, err := media.OpusPacketSamples(packet, 48000); err != nil || n != frameTicks {
		return false
	}
	p.mu.Lock()
	if p.closed || p.packets >= maxQueuedPackets {
		p.mu.Unlock()
		return false
	}
	b := getBuf(len(packet))
	copy(*b, packet)
	p.push(qentry{tag: tag, buf: b, n: len(packet)})
	p.packets++
	ok := p.ensureRunning()
	p.mu.Unlock()
	return ok
}

// endOf queues tag's end mark; see Call.EndOf.
func (p *player) endOf(tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.marks >= maxQueuedMarks {
		return
	}
	p.push(qentry{tag: tag})
	p.marks++
	p.ensureRunning()
}

// ensureRunning starts the player goroutine if there is none. p.mu held.
func (p *player) ensureRunning() bool {
	if p.running {
		return true
	}
	p.running = true
	if !p.spawn(p.run) { // the call is ending
		p.running = false
		return false
	}
	return true
}

// clear drops everything queued; see Call.Clear.
func (p *player) clear() (tag string, playedMS float64, wasPlaying bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.stat(p.curTag); st != nil && st.started && !st.ended {
		st.ended = true // cleared: no Stopped for it
		tag, playedMS, wasPlaying = st.tag, float64(st.packets*frameMS), true
	} else {
		for i := 0; i < p.count; i++ {
			if e := p.q[(p.head+i)%len(p.q)]; e.buf != nil {
				tag = e.tag
				if st := p.stat(tag); st != nil {
					playedMS = float64(st.packets * frameMS)
				}
				break
			}
		}
	}
	p.drop()
	p.restart = true
	return tag, playedMS, wasPlaying
}

// playedMS returns the milliseconds of tag written so far (0 for a tag not
// among the most recent recentTags).
func (p *player) playedMS(tag string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.stat(tag); st != nil {
		return float64(st.packets * frameMS)
	}
	return 0
}

// close stops the player for good and releases the queue.
func (p *player) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	p.drop()
}

// run is the player goroutine. It writes one packet per tick; when ticks
// were missed (time.Ticker drops them while the goroutine is late: a
// loaded machine, a long GC assist) it writes the overdue packets at the
// next tick, up to maxBurst, so the audio keeps real time; further behind
// it accepts the delay rather than burst.
func (p *player) run() {
	select {
	case <-p.connected:
	case <-p.stop:
		p.exit()
		return
	}
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	spurt := true       // the first packet of a goroutine's run starts a talkspurt
	var since time.Time // schedule: packet i of the talkspurt is due at since + i*20 ms
	sent := 0
	for {
		burst := 1
		if sent > 0 {
			due := int(time.Since(since)/FrameDuration) + 1 - sent
			if due > maxBurst {
				since = time.Now().Add(-time.Duration(sent-1) * FrameDuration)
			} else if due > 1 {
				burst = due
			}
		}
		for i := range burst {
			wrote, restarted, more := p.tick(spurt, i > 0)
			if !more {
				return
			}
			if !wrote {
				break
			}
			if restarted {
				since, sent = p.lastWrite, 0
			}
			spurt = false
			sent++
		}
		if ticker == nil {
			ticker = time.NewTicker(FrameDuration)
		}
		select {
		case <-ticker.C:
		case <-p.stop:
			p.exit()
			return
		}
	}
}

func (p *player) exit() {
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
}

// tick is one 20 ms step: it consumes the end marks at the head of the
// queue, then writes at most one packet (restarted: it began a
// talkspurt). more is false when the queue was empty: the goroutine must
// exit, running is already false. A catch-up step (an overdue packet
// within a tick) never exits: with nothing to write it reports wrote false.
func (p *player) tick(spurt, catchUp bool) (wrote, restarted, more bool) {
	now := time.Now()
	p.events = p.events[:0]
	p.mu.Lock()
	var e qentry
	for {
		if p.closed || p.count == 0 {
			if len(p.events) > 0 || catchUp {
				// Emit before giving up running (the next goroutine
				// reuses p.events), then look at the queue again.
				p.mu.Unlock()
				p.emit()
				if catchUp {
					return false, false, true
				}
				p.mu.Lock()
				continue
			}
			p.running = false
			p.mu.Unlock()
			return false, false, false
		}
		e = p.pop()
		if e.buf != nil {
			p.packets--
			break
		}
		p.marks--
		if st := p.stat(e.tag); st != nil && st.started && !st.ended {
			st.ended = true
			p.events = append(p.events, PlaybackEvent{Type: PlaybackStopped, Tag: e.tag, At: now})
		}
	}
	st := p.stat(e.tag)
	if st == nil {
		st = p.newStat(e.tag)
	}
	st.packets++
	first := !st.started
	st.started = true
	p.curTag = e.tag
	if p.restart {
		p.restart, spurt = false, true
	}
	p.mu.Unlock()

	p.emit() // Stopped of earlier tags first
	p.nextHeader(now, spurt)
	p.pkt.Payload = (*e.buf)[:e.n]
	_ = p.w.WriteRTP(&p.pkt) // fails only once the call is ending
	p.pkt.Payload = nil
	putBuf(e.buf)
	if first {
		p.events = append(p.events, PlaybackEvent{Type: PlaybackStarted, Tag: e.tag, At: now})
		p.emit()
	}
	return true, spurt, true
}

// nextHeader advances the RTP header for a packet written at now:
// sequence numbers are continuous; the timestamp advances one frame, or
// at the start of a talkspurt by the wall-clock time since the last
// packet (the silence the receiver should play), with the marker bit set.
func (p *player) nextHeader(now time.Time, spurt bool) {
	h := &p.pkt.Header
	h.Marker = spurt
	if !p.sent {
		p.sent = true
		h.Marker = true
	} else {
		h.SequenceNumber++
		adv := uint32(frameTicks)
		if spurt {
			if gap := now.Sub(p.lastWrite); gap > FrameDuration {
				adv = uint32((gap.Nanoseconds()*48 + 500_000) / 1_000_000)
			}
		}
		h.Timestamp += adv
	}
	p.lastWrite = now
}

func (p *player) emit() {
	if p.onEvent != nil {
		for _, ev := range p.events {
			p.onEvent(ev)
		}
	}
	p.events = p.events[:0]
}

// Queue ring; p.mu held.

func (p *player) push(e qentry) {
	if p.count == len(p.q) {
		n := 2 * len(p.q)
		if n == 0 {
			n = 64
		}
		q := make([]qentry, n)
		for i := 0; i < p.count; i++ {
			q[i] = p.q[(p.head+i)%len(p.q)]
		}
		p.q, p.head = q, 0
	}
	p.q[(p.head+p.count)%len(p.q)] = e
	p.count++
}

func (p *player) pop() qentry {
	e := p.q[p.head]
	p.q[p.head] = qentry{}
	p.head = (p.head + 1) % len(p.q)
	p.count--
	return e
}

func (p *player) drop() {
	for p.count > 0 {
		if e := p.pop(); e.buf != nil {
			putBuf(e.buf)
		}
	}
	p.packets, p.marks = 0, 0
}

func (p *player) stat(tag string) *tagStat {
	for i := range p.stats {
		if st := &p.stats[i]; st.tag == tag && (st.packets > 0 || st.started) {
			return st
		}
	}
	return nil
}

func (p *player) newStat(tag string) *tagStat {
	st := &p.stats[p.nextSt]
	p.nextSt = (p.nextSt + 1) % len(p.stats)
	*st = tagStat{tag: tag}
	return st
}

// Packet buffers: pooled by size class, so queueing a packet allocates
// nothing in steady state and a queue of typical 60-160 byte packets does
// not hold 1275-byte buffers.
var bufClasses = [...]int{128, 256, 512, media.OpusMaxPacketSize}

var bufPools [len(bufClasses)]sync.Pool

func getBuf(n int) *[]byte {
	for i, size := range bufClasses {
		if n <= size {
			if b, ok := bufPools[i].Get().(*[]byte); ok {
				*b = (*b)[:n]
				return b
			}
			b := make([]byte, n, size)
			return &b
		}
	}
	panic("rtc: packet larger than OpusMaxPacketSize") // play checks the size
}

func putBuf(b *[]byte) {
	for i, size := range bufClasses {
		if cap(*b) == size {
			bufPools[i].Put(b)
			return
		}
	}
}
