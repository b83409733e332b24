package rtc

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fakeTrack records what the player writes.
type fakeTrack struct {
	mu   sync.Mutex
	pkts []rtpIn
	size []int
}

func (f *fakeTrack) WriteRTP(p *rtp.Packet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pkts = append(f.pkts, rtpIn{seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker, at: time.Now()})
	f.size = append(f.size, len(p.Payload))
	return nil
}

func (f *fakeTrack) written() []rtpIn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rtpIn(nil), f.pkts...)
}

type testPlayer struct {
	*player
	track     *fakeTrack
	connected chan struct{}
	events    chan PlaybackEvent
	wg        sync.WaitGroup
}

func newTestPlayer(connected bool) *testPlayer {
	tp := &testPlayer{track: &fakeTrack{}, connected: make(chan struct{}), events: make(chan PlaybackEvent, 64)}
	if connected {
		close(tp.connected)
	}
	tp.player = newPlayer(tp.track, func(ev PlaybackEvent) { tp.events <- ev }, tp.connected, func(f func()) bool {
		tp.wg.Add(1)
		go func() {
			defer tp.wg.Done()
			f()
		}()
		return true
	})
	return tp
}

// idle waits for the player goroutine to exit by itself.
func (tp *testPlayer) idle(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { tp.wg.Wait(); close(done) }()
	waitChan(t, "the player to go idle", done, 3*time.Second)
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.running {
		t.Fatal("running after the goroutine exited")
	}
}

func TestPlayerPacing(t *testing.T) {
	tp := newTestPlayer(true)
	pkts := tone(t, 10)
	for _, p := range pkts {
		if !tp.play("a", p) {
			t.Fatal("play refused")
		}
	}
	tp.endOf("a")
	tp.endOf("never-played")
	tp.idle(t)
	got := tp.track.written()
	if len(got) != 10 {
		t.Fatalf("%d packets written", len(got))
	}
	checkSpurt(t, got, 0, 10)
	if span := got[9].at.Sub(got[0].at); span < 170*time.Millisecond || span > 260*time.Millisecond {
		t.Errorf("10 packets over %v, want 180 ms", span)
	}
	for i, n := range tp.track.size {
		if n != len(pkts[i]) {
			t.Errorf("packet %d: %d bytes written, %d queued", i, n, len(pkts[i]))
		}
	}
	started, stopped := nextEvent(t, tp.events), nextEvent(t, tp.events)
	if started.Type != PlaybackStarted || started.Tag != "a" || stopped.Type != PlaybackStopped || stopped.Tag != "a" {
		t.Fatalf("events %+v %+v", started, stopped)
	}
	if d := stopped.At.Sub(got[9].at); d < 15*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("Stopped %v after the last packet, want one frame", d)
	}
	select {
	case ev := <-tp.events:
		t.Errorf("unexpected %+v (EndOf of a tag never played)", ev)
	default:
	}
	if ms := tp.playedMS("a"); ms != 200 {
		t.Errorf("playedMS %v", ms)
	}
	tp.close()
}

func TestPlayerWaitsForConnection(t *testing.T) {
	tp := newTestPlayer(false)
	pkts := tone(t, 3)
	for _, p := range pkts {
		tp.play("a", p)
	}
	time.Sleep(60 * time.Millisecond)
	if n := len(tp.track.written()); n != 0 {
		t.Fatalf("%d packets written before the connection", n)
	}
	close(tp.connected)
	tp.idle(t)
	if n := len(tp.track.written()); n != 3 {
		t.Fatalf("%d packets written", n)
	}
	tp.close()
}

func TestPlayerRejects(t *testing.T) {
	tp := newTestPlayer(false)
	good := tone(t, 1)[0]
	for name, pkt := range map[string][]byte{
		"empty":     nil,
		"40 ms":     {0x10, 0xaa, 0xbb}, // SILK NB 40 ms, one frame
		"too large": make([]byte, 1276),
		"malformed": {0xff}, // code 3 without a frame count
	} {
		if tp.play("a", pkt) {
			t.Errorf("%s packet accepted", name)
		}
	}
	for i := 0; i < maxQueuedPackets; i++ {
		if !tp.play("a", good) {
			t.Fatalf("packet %d refused", i)
		}
	}
	if tp.play("a", good) {
		t.Error("packet beyond MaxQueuedAudio accepted")
	}
	tag, played, was := tp.clear()
	if tag != "a" || played != 0 || was {
		t.Errorf("clear before playing = %q %v %v", tag, played, was)
	}
	if !tp.play("a", good) {
		t.Error("play refused after clear")
	}
	tp.close()
	tp.wg.Wait()
	if tp.play("a", good) {
		t.Error("play accepted after close")
	}
}

func TestPlayerClearAndTalkspurts(t *testing.T) {
	tp := newTestPlayer(true)
	pkts := tone(t, 50)
	for _, p := range pkts {
		tp.play("a", p)
	}
	tp.endOf("a")
	nextEvent(t, tp.events) // Started a
	time.Sleep(100 * time.Millisecond)
	tag, played, was := tp.clear()
	n := len(tp.track.written())
	if tag != "a" || !was || played < 60 || played > 160 {
		t.Fatalf("clear = %q %v %v", tag, played, was)
	}
	tp.idle(t)
	got := tp.track.written()
	if len(got) > n+1 || float64(len(got)*frameMS) != played || tp.playedMS("a") != played {
		t.Fatalf("%d packets written (%d at clear), played %v, playedMS %v", len(got), n, played, tp.playedMS("a"))
	}
	// Underrun: a packet, a pause, a packet: two talkspurts, the second's
	// timestamp advanced by the pause.
	tp.play("b", pkts[0])
	tp.idle(t)
	time.Sleep(100 * time.Millisecond)
	tp.play("b", pkts[1])
	tp.endOf("b")
	tp.idle(t)
	all := tp.track.written()
	if len(all) != len(got)+2 {
		t.Fatalf("%d packets", len(all)-len(got))
	}
	b0, b1 := all[len(got)], all[len(got)+1]
	if !b0.marker || !b1.marker || b0.seq != got[len(got)-1].seq+1 || b1.seq != b0.seq+1 {
		t.Errorf("talkspurts: %+v %+v after %+v", b0, b1, got[len(got)-1])
	}
	wall := b1.at.Sub(b0.at).Seconds() * 48000
	if d := float64(b1.ts-b0.ts) - wall; d < -480 || d > 480 {
		t.Errorf("timestamp advanced %d over %.0f of wall clock", b1.ts-b0.ts, wall)
	}
	if ev := nextEvent(t, tp.events); ev.Type != PlaybackStarted || ev.Tag != "b" {
		t.Errorf("event %+v", ev)
	}
	if ev := nextEvent(t, tp.events); ev.Type != PlaybackStopped || ev.Tag != "b" {
		t.Errorf("event %+v", ev)
	}
	tp.close()
}

func TestPlayerAllocations(t *testing.T) {
	tp := newTestPlayer(true)
	tp.spawn = func(func()) bool { return true } // drive tick by hand
	pkt := tone(t, 1)[0]
	step := func() {
		tp.play("a", pkt)
		tp.tick(false, false)
	}
	for range 100 {
		step()
	}
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Errorf("%v allocations per packet, want 0", a)
	}
}

// TestPlayerCatchesUp: when the player goroutine is late (here a slow
// OnPlayback), the overdue packets go out at the next tick so the audio
// keeps real time.
func TestPlayerCatchesUp(t *testing.T) {
	tp := newTestPlayer(true)
	tp.onEvent = func(ev PlaybackEvent) {
		if ev.Type == PlaybackStarted {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, p := range tone(t, 20) {
		tp.play("a", p)
	}
	tp.idle(t)
	got := tp.track.written()
	checkSpurt(t, got, 0, len(got))
	span := got[len(got)-1].at.Sub(got[0].at)
	t.Logf("20 packets over %v", span)
	if len(got) != 20 || span < 360*time.Millisecond || span > 412*time.Millisecond {
		t.Errorf("%d packets over %v, want 20 over 380 ms", len(got), span)
	}
	tp.close()
}
