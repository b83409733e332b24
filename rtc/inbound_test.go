package rtc

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// pcmLog records OnAudio calls.
type pcmLog struct {
	calls   int
	samples []int16
}

func (l *pcmLog) onAudio(pcm []int16, _ time.Time) {
	l.calls++
	l.samples = append(l.samples, pcm...)
}

func rtpPacket(t testing.TB, pt uint8, seq uint16, ts uint32, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 42},
		Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestInbound(t testing.TB) (*inbound, *pcmLog) {
	t.Helper()
	log := &pcmLog{}
	in, err := newInbound(111, log.onAudio)
	if err != nil {
		t.Fatal(err)
	}
	return in, log
}

func TestInbound(t *testing.T) {
	packets := tone(t, 30)
	base, ts0 := 65530, 4294967000 // both wrap during the test
	feed := func(in *inbound, seqs ...int) {
		for _, i := range seqs {
			in.handle(rtpPacket(t, 111, uint16(base+i), uint32(ts0+960*i), packets[i%len(packets)]), time.Now())
		}
	}
	span := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}

	t.Run("in order", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, span(0, 20)...)
		if len(log.samples) != 20*320 || log.calls != 20 {
			t.Fatalf("%d samples in %d calls, want 6400 in 20", len(log.samples), log.calls)
		}
	})
	t.Run("duplicates and late packets are dropped", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0, 1, 2, 2, 1, 3)
		if len(log.samples) != 4*320 || in.late != 2 {
			t.Fatalf("%d samples, %d late", len(log.samples), in.late)
		}
	})
	t.Run("short loss is concealed", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, append(span(0, 10), span(12, 20)...)...)
		if len(log.samples) != 20*320 || in.lost != 2 || log.calls != 19 {
			t.Fatalf("%d samples in %d calls, %d lost", len(log.samples), log.calls, in.lost)
		}
		plc := log.samples[10*320 : 12*320]
		if isSilent(plc) {
			t.Error("concealment is silence, want libopus PLC")
		}
	})
	t.Run("long loss: PLC then silence", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, append(span(0, 5), span(13, 20)...)...)
		if len(log.samples) != 20*320 || in.lost != 8 {
			t.Fatalf("%d samples, %d lost", len(log.samples), in.lost)
		}
		if isSilent(log.samples[5*320 : 10*320]) {
			t.Error("the first 5 lost packets are silence, want PLC")
		}
		if !isSilent(log.samples[10*320 : 13*320]) {
			t.Error("the last 3 lost packets are not silence")
		}
	})
	t.Run("timestamp gap with continuous sequence (DTX) is silence", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0, 1)
		in.handle(rtpPacket(t, 111, uint16(base+2), uint32(ts0+960*12), packets[2]), time.Now())
		if len(log.samples) != 13*320 || !isSilent(log.samples[2*320:12*320]) || in.lost != 0 {
			t.Fatalf("%d samples, %d lost", len(log.samples), in.lost)
		}
	})
	t.Run("a gap over 1 s is a discontinuity", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0)
		in.handle(rtpPacket(t, 111, uint16(base+1), uint32(ts0+960*200), packets[1]), time.Now())
		if len(log.samples) != 2*320 {
			t.Fatalf("%d samples", len(log.samples))
		}
	})
	t.Run("loss with unusable timestamps counts packets", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0)
		in.handle(rtpPacket(t, 111, uint16(base+4), uint32(ts0-5000), packets[4]), time.Now())
		if len(log.samples) != 5*320 || in.lost != 3 {
			t.Fatalf("%d samples, %d lost", len(log.samples), in.lost)
		}
	})
	t.Run("other payload types and empty payloads move the sequence only", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0)
		in.handle(rtpPacket(t, 126, uint16(base+1), uint32(ts0+960), []byte{1, 2, 3, 4}), time.Now())
		in.handle(rtpPacket(t, 111, uint16(base+2), uint32(ts0+960), nil), time.Now())
		in.handle(rtpPacket(t, 111, uint16(base+3), uint32(ts0+960), packets[1]), time.Now())
		if len(log.samples) != 2*320 || in.lost != 0 {
			t.Fatalf("%d samples, %d lost", len(log.samples), in.lost)
		}
	})
	t.Run("undecodable packets are concealed", func(t *testing.T) {
		in, log := newTestInbound(t)
		feed(in, 0)
		in.handle(rtpPacket(t, 111, uint16(base+1), uint32(ts0+960), []byte{0xff}), time.Now()) // code 3 without a frame count
		in.handle([]byte{0x80}, time.Now())                                                     // not RTP
		feed(in, 2)
		if len(log.samples) != 3*320 || in.bad != 2 {
			t.Fatalf("%d samples, %d bad", len(log.samples), in.bad)
		}
	})
}

func isSilent(pcm []int16) bool {
	for _, v := range pcm {
		if v != 0 {
			return false
		}
	}
	return true
}

// inboundLoop feeds packets with rewritten sequence numbers and
// timestamps, as a steady stream.
type inboundLoop struct {
	in   *inbound
	raw  [][]byte
	seq  uint16
	ts   uint32
	next int
}

func newInboundLoop(t testing.TB) *inboundLoop {
	in, err := newInbound(111, func([]int16, time.Time) {})
	if err != nil {
		t.Fatal(err)
	}
	l := &inboundLoop{in: in}
	for _, p := range tone(t, 50) {
		l.raw = append(l.raw, rtpPacket(t, 111, 0, 0, p))
	}
	return l
}

func (l *inboundLoop) step(at time.Time) {
	b := l.raw[l.next]
	l.next = (l.next + 1) % len(l.raw)
	binary.BigEndian.PutUint16(b[2:], l.seq)
	binary.BigEndian.PutUint32(b[4:], l.ts)
	l.seq++
	l.ts += 960
	l.in.handle(b, at)
}

func TestInboundAllocations(t *testing.T) {
	l := newInboundLoop(t)
	at := time.Now()
	for range 60 {
		l.step(at)
	}
	if a := testing.AllocsPerRun(200, func() { l.step(at) }); a != 0 {
		t.Errorf("%v allocations per packet, want 0", a)
	}
}

// BenchmarkInboundPacket is the per-packet decode step of a call's reader:
// RTP parsing, sequence checks, Opus decoding to 16 kHz into the reused
// buffer (the OnAudio callback does nothing).
func BenchmarkInboundPacket(b *testing.B) {
	l := newInboundLoop(b)
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.step(at)
	}
}
