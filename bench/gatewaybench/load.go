package main

// The latency load: N sessions, each paced open-loop-ish by a random pause
// between turns, measuring each text turn on the wire.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Wire messages of one turn. The echo server gets one message of the same
// size as the gateway's conversation.item.create per turn.
var (
	itemCreate     = []byte(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"What are the opening hours of the office on weekdays, please?"}]}}`)
	responseCreate = []byte(`{"type":"response.create"}`)
	echoPayload    = bytes.Repeat([]byte("x"), len(itemCreate)+len(responseCreate))
)

// wsHTTP dials the WebSocket connections; no proxy, ever (loopback only).
var wsHTTP = &http.Client{Transport: &http.Transport{
	Proxy:              nil,
	DialContext:        (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}).DialContext,
	DisableCompression: true,
	MaxIdleConns:       1,
}}

func init() {
	ctlClient.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
}

// target is where and how a client connects to a child.
type target struct {
	kind string // gateway or echo
	url  string
	hdr  http.Header
}

func targetOf(c *child) target {
	if c.kind == "gateway" {
		return target{kind: "gateway", url: "ws://" + c.addr + "/v1/realtime?model=bench",
			hdr: http.Header{"Authorization": {"Bearer " + benchKey}}}
	}
	return target{kind: "echo", url: "ws://" + c.addr + "/echo"}
}

// dial opens one connection; for the gateway it also waits for
// session.created.
func (t target) dial(ctx context.Context) (*websocket.Conn, *eventReader, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, t.url, &websocket.DialOptions{HTTPClient: wsHTTP, HTTPHeader: t.hdr})
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	rd := &eventReader{conn: conn, buf: make([]byte, 0, 2048)}
	if t.kind == "gateway" {
		b, err := rd.next(dctx)
		if err != nil {
			conn.CloseNow()
			return nil, nil, fmt.Errorf("waiting for session.created: %w", err)
		}
		if typ := eventType(b); typ != "session.created" {
			conn.CloseNow()
			return nil, nil, fmt.Errorf("first event %q, want session.created: %.200s", typ, b)
		}
	}
	return conn, rd, nil
}

// eventReader reads whole messages into a reused buffer.
type eventReader struct {
	conn *websocket.Conn
	buf  []byte
}

func (r *eventReader) next(ctx context.Context) ([]byte, error) {
	_, rd, err := r.conn.Reader(ctx)
	if err != nil {
		return nil, err
	}
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	r.buf = b
	return b, nil
}

// eventType returns the "type" of a server event. The gateway encodes it
// first; anything else takes the slow path.
func eventType(b []byte) string {
	const pre = `{"type":"`
	if bytes.HasPrefix(b, []byte(pre)) {
		if i := bytes.IndexByte(b[len(pre):], '"'); i >= 0 {
			return string(b[len(pre) : len(pre)+i])
		}
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &ev)
	return ev.Type
}

// gatewayMS extracts response.metadata.parley.gateway_ms from response.done:
// the gateway's own view of its share (response.create decoded → first
// delta queued). -1 when absent.
func gatewayMS(b []byte) time.Duration {
	const key = `"gateway_ms":`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return -1
	}
	rest := b[i+len(key):]
	j := 0
	for j < len(rest) && (rest[j] == '.' || rest[j] == '-' || rest[j] == 'e' || rest[j] == '+' || (rest[j] >= '0' && rest[j] <= '9')) {
		j++
	}
	f, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil {
		return -1
	}
	return time.Duration(f * float64(time.Millisecond))
}

// sample is one measured turn.
type sample struct {
	first time.Duration // gateway: response.create written → first delta; echo: write → echo
	done  time.Duration // gateway: → response.done
	srv   time.Duration // gateway: server-reported gateway_ms (-1: none)
}

// gatewayTurn runs one text turn: conversation.item.create, then
// response.create, then every event until response.done.
func gatewayTurn(ctx context.Context, conn *websocket.Conn, rd *eventReader) (sample, error) {
	if err := conn.Write(ctx, websocket.MessageText, itemCreate); err != nil {
		return sample{}, fmt.Errorf("write item.create: %w", err)
	}
	t0 := time.Now()
	if err := conn.Write(ctx, websocket.MessageText, responseCreate); err != nil {
		return sample{}, fmt.Errorf("write response.create: %w", err)
	}
	var first time.Duration
	for range 64 { // a turn is 14 events
		b, err := rd.next(ctx)
		if err != nil {
			return sample{}, fmt.Errorf("read: %w", err)
		}
		now := time.Now()
		switch typ := eventType(b); typ {
		case "response.output_text.delta":
			if first == 0 {
				first = now.Sub(t0)
			}
		case "response.done":
			if first == 0 {
				return sample{}, fmt.Errorf("response.done without a text delta: %.300s", b)
			}
			return sample{first: first, done: now.Sub(t0), srv: gatewayMS(b)}, nil
		case "error":
			return sample{}, fmt.Errorf("error event: %.300s", b)
		}
	}
	return sample{}, errors.New("no response.done within 64 events")
}

// echoTurn writes one message and waits for it to come back.
func echoTurn(ctx context.Context, conn *websocket.Conn, rd *eventReader) (sample, error) {
	t0 := time.Now()
	if err := conn.Write(ctx, websocket.MessageText, echoPayload); err != nil {
		return sample{}, fmt.Errorf("write: %w", err)
	}
	b, err := rd.next(ctx)
	if err != nil {
		return sample{}, fmt.Errorf("read: %w", err)
	}
	d := time.Since(t0)
	if len(b) != len(echoPayload) {
		return sample{}, fmt.Errorf("echo of %d bytes, sent %d", len(b), len(echoPayload))
	}
	return sample{first: d, done: d, srv: -1}, nil
}

// LevelRun is the result of one server at one concurrency level.
type LevelRun struct {
	Server       string   `json:"server"`
	Sessions     int      `json:"sessions"`
	Connected    int      `json:"connected"`
	Turns        int      `json:"turns"`  // measured turns
	Errors       int      `json:"errors"` // failed dials and turns
	ErrorSamples []string `json:"error_samples,omitempty"`
	RatePerSec   float64  `json:"turns_per_sec"`
	// First is the gateway-added latency (response.create written → first
	// response.output_text.delta); for echo, message written → echo read.
	First Stats `json:"first_delta"`
	// Done is response.create written → response.done (gateway only).
	Done Stats `json:"response_done"`
	// ServerGateway is the gateway's own gateway_ms figure (gateway only).
	ServerGateway Stats `json:"server_gateway_ms"`

	// Costs over the measurement window, per measured turn: the server's
	// and the load generator's CPU time, the server's write/read syscalls.
	ServerCPUPerTurnUS   float64 `json:"server_cpu_us_per_turn"`
	ServerCPUPercent     float64 `json:"server_cpu_percent"` // of one core
	ServerWritesPerTurn  float64 `json:"server_write_syscalls_per_turn"`
	ServerReadsPerTurn   float64 `json:"server_read_syscalls_per_turn"`
	ServerAllocPerTurn   float64 `json:"server_alloc_bytes_per_turn"`
	ServerMallocsPerTurn float64 `json:"server_mallocs_per_turn"`
	ServerGCPerSec       float64 `json:"server_gc_per_sec"`
	ClientCPUPerTurnUS   float64 `json:"client_cpu_us_per_turn"`
	ClientCPUPercent     float64 `json:"client_cpu_percent"`
	// OtherCPUPercent is the CPU the rest of the machine used during the
	// window (all CPUs' busy time minus server and client), in % of one
	// core: anything above a few percent makes the latencies noisy.
	OtherCPUPercent float64 `json:"other_cpu_percent"`
	// Attempts is how many times the run was measured (-noisy-retries);
	// the quietest attempt is reported.
	Attempts int `json:"attempts"`
}

type levelState struct {
	mu      sync.Mutex
	samples []sample
	errs    atomic.Int64
	errList []string
	conns   atomic.Int64
}

func (s *levelState) fail(err error) {
	s.errs.Add(1)
	s.mu.Lock()
	if len(s.errList) < 5 {
		s.errList = append(s.errList, err.Error())
	}
	s.mu.Unlock()
}

// runLevel drives n sessions against the child c and measures their turns
// and what they cost. onMeasure, if set, runs once in its own goroutine with
// the start of the measurement window.
func runLevel(ctx context.Context, cfg *Config, c *child, n int, onMeasure func(from time.Time)) LevelRun {
	t := targetOf(c)
	start := time.Now()
	rampEnd := start.Add(cfg.Ramp)
	if n == 1 {
		rampEnd = start
	}
	from := rampEnd.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	lctx, cancel := context.WithDeadline(ctx, to.Add(cfg.TurnLimit+15*time.Second))
	defer cancel()
	maxTurns := int((to.Sub(start))/cfg.ThinkMin) + 2

	if onMeasure != nil {
		go onMeasure(from)
	}
	// Snapshot the server's and our own counters at both ends of the window.
	var srvA, srvB MemStats
	var cliA, cliB, busyA, busyB time.Duration
	var probeOK bool
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		var err error
		if !sleepUntil(lctx, from) {
			return
		}
		u, s := cpuTimes()
		cliA, busyA = u+s, machineBusy()
		if srvA, err = c.mem(lctx, false); err != nil || !sleepUntil(lctx, to) {
			return
		}
		u, s = cpuTimes()
		cliB, busyB = u+s, machineBusy()
		srvB, err = c.mem(lctx, false)
		probeOK = err == nil
	}()
	turn := echoTurn
	if t.kind == "gateway" {
		turn = gatewayTurn
	}
	st := &levelState{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			if !sleepUntil(lctx, start.Add(time.Duration(int64(cfg.Ramp)*int64(i)/int64(n)))) {
				return
			}
			conn, rd, err := t.dial(lctx)
			if err != nil {
				st.fail(err)
				return
			}
			st.conns.Add(1)
			defer func() {
				if conn.Close(websocket.StatusNormalClosure, "") != nil {
					conn.CloseNow()
				}
			}()
			var mine []sample
			defer func() {
				st.mu.Lock()
				st.samples = append(st.samples, mine...)
				st.mu.Unlock()
			}()
			// Sessions whose next turn would fall past the window idle until
			// it ends, so no connection closes inside the window.
			defer sleepUntil(lctx, to)
			pause := time.Duration(rng.Int64N(int64(cfg.ThinkMax)))
			for range maxTurns {
				at := time.Now().Add(pause)
				if !at.Before(to) || !sleepUntil(lctx, at) {
					return
				}
				t0 := time.Now()
				tctx, tcancel := context.WithTimeout(lctx, cfg.TurnLimit)
				s, err := turn(tctx, conn, rd)
				tcancel()
				if err != nil {
					st.fail(err)
					return
				}
				if !t0.Before(from) && t0.Before(to) {
					mine = append(mine, s)
				}
				pause = cfg.ThinkMin + time.Duration(rng.Int64N(int64(cfg.ThinkMax-cfg.ThinkMin)+1))
			}
		}()
	}
	wg.Wait()
	<-probeDone // returns by the end of the window at the latest

	r := LevelRun{Server: t.kind, Sessions: n, Connected: int(st.conns.Load()), Errors: int(st.errs.Load()),
		ErrorSamples: st.errList, Turns: len(st.samples)}
	r.RatePerSec = float64(r.Turns) / cfg.Duration.Seconds()
	first := make([]time.Duration, 0, len(st.samples))
	done := make([]time.Duration, 0, len(st.samples))
	srv := make([]time.Duration, 0, len(st.samples))
	for _, s := range st.samples {
		first = append(first, s.first)
		done = append(done, s.done)
		if s.srv >= 0 && t.kind == "gateway" {
			srv = append(srv, s.srv)
		}
	}
	r.First = statsOf(first)
	if t.kind == "gateway" {
		r.Done = statsOf(done)
		r.ServerGateway = statsOf(srv)
	}
	if probeOK && r.Turns > 0 {
		turns, secs := float64(r.Turns), cfg.Duration.Seconds()
		srvCPU := (srvB.CPUUser + srvB.CPUSys) - (srvA.CPUUser + srvA.CPUSys)
		r.ServerCPUPerTurnUS = float64(srvCPU.Microseconds()) / turns
		r.ServerCPUPercent = 100 * srvCPU.Seconds() / secs
		r.ServerWritesPerTurn = float64(srvB.SysCW-srvA.SysCW) / turns
		r.ServerReadsPerTurn = float64(srvB.SysCR-srvA.SysCR) / turns
		r.ServerAllocPerTurn = float64(srvB.TotalAlloc-srvA.TotalAlloc) / turns
		r.ServerMallocsPerTurn = float64(srvB.Mallocs-srvA.Mallocs) / turns
		r.ServerGCPerSec = float64(srvB.NumGC-srvA.NumGC) / secs
		r.ClientCPUPerTurnUS = float64((cliB - cliA).Microseconds()) / turns
		r.ClientCPUPercent = 100 * (cliB - cliA).Seconds() / secs
		if busyA > 0 && busyB > busyA {
			r.OtherCPUPercent = max(0, 100*(busyB-busyA).Seconds()/secs-r.ServerCPUPercent-r.ClientCPUPercent)
		}
	}
	return r
}

// machineBusy returns the busy CPU time of the whole machine, all CPUs,
// from /proc/stat (0 when unavailable).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	// user nice system idle iowait irq softirq steal guest guest_nice:
	// count user, nice, system and steal. Interrupt time is left out: the
	// kernel charges our own loopback traffic's softirq work there, not to
	// our processes. Guest time is already in user.
	var busy uint64
	for i, v := range f[1:] {
		if i >= 3 && i <= 6 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(busy) * time.Second / clkTck
}

// waitQuiet waits, at most limit, until the rest of the machine has been
// using less than noisyPercent of a core for half a second: other
// processes' CPU use skews latency tails. It reports the last reading (in
// % of one core) and whether the machine was quiet.
func waitQuiet(ctx context.Context, limit time.Duration) (float64, bool) {
	const step = 500 * time.Millisecond
	other := 0.0
	for i := 0; i <= int(limit/step); i++ {
		u, s := cpuTimes()
		busy := machineBusy()
		if !sleepUntil(ctx, time.Now().Add(step)) {
			return other, false
		}
		u2, s2 := cpuTimes()
		own := (u2 + s2) - (u + s)
		other = max(0, 100*((machineBusy()-busy)-own).Seconds()/step.Seconds())
		if other < noisyPercent {
			return other, true
		}
	}
	return other, false
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
