package main

// The server side: this binary re-executed with "-serve". The child runs
// the real gateway (real SQLite storage in a temp dir, a sealer as parleyd
// has) with the zero-latency engines of package fakeengines, prints
// "ADDR host:port" once it listens, and serves until its stdin reaches EOF
// (the harness closed it, or died).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"parley/agent"
	"parley/bench/internal/fakeengines"
	"parley/gateway"
	"parley/rtc"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// benchKey is the secret API key the gateway child accepts.
const benchKey = "sk_replaybench_0123456789abcdefgh"

// agentID is the child's one agent (replay.Options.Agent).
const agentID = "bench"

func isChild(args []string) bool { return len(args) > 0 && args[0] == "-serve" }

func childMain(args []string) int {
	fs := flag.NewFlagSet("replaybench -serve", flag.ContinueOnError)
	fs.Bool("serve", false, "serve (the harness's child)")
	dir := fs.String("dir", "", "temp directory for the SQLite file, removed on exit")
	withRTC := fs.Bool("rtc", false, "answer WebRTC calls (a UDP edge on 127.0.0.1)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "replaybench child: -dir is required")
		return 2
	}
	defer os.RemoveAll(*dir)
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "replaybench child: %v\n", err)
		return 1
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(*dir, "parley.db"))
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	auth, _, err := gateway.BootstrapKeys(ctx, st, benchKey)
	if err != nil {
		return fail(err)
	}
	mk, err := seal.NewMasterKey("bench")
	if err != nil {
		return fail(err)
	}
	kr, err := seal.NewKeyring(st, []seal.MasterKey{mk}, seal.Options{})
	if err != nil {
		return fail(err)
	}
	// Warnings only (a slow client, a recognizer falling behind).
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	var edge *rtc.Edge
	if *withRTC {
		if edge, err = rtc.NewEdge(rtc.Config{UDPAddr: "127.0.0.1:0", IncludeLoopback: true, Logger: log}); err != nil {
			return fail(err)
		}
	}
	gw, err := gateway.New(gateway.Options{
		Sealer: kr,
		Agents: map[string]*agent.Agent{agentID: {
			ID: agentID, Name: "Bench", Instructions: "You are a benchmark agent. Answer briefly.",
			Responder: fakeengines.Agent{},
		}},
		Store: st, Auth: auth, Logger: log,
		Recognizer: fakeengines.Recognizer{}, Synthesizer: fakeengines.Synth{},
		MaxSessions: 20000,
		RTC:         edge, MaxCalls: 10000, MaxCallsPerKey: 10000,
	})
	if err != nil {
		return fail(err)
	}
	defer gw.Close()

	mux := http.NewServeMux()
	mux.Handle("/", gw.Handler())
	mux.HandleFunc("GET /debug/bench", func(w http.ResponseWriter, r *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s := ChildStats{
			Sessions: gw.ActiveSessions(), Goroutines: runtime.NumGoroutine(),
			HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, NumGC: m.NumGC, TotalAlloc: m.TotalAlloc,
			GCPauseTotal: time.Duration(m.PauseTotalNs), Errors: map[string]float64{},
		}
		gatherMetrics(gw, &s)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())

	select {
	case <-stop:
	case <-sigs:
	}
	// No drain: the harness is done with us.
	return 0
}

// ChildStats is what GET /debug/bench reports: the gateway's own counters
// since the child started (a fresh child per step).
type ChildStats struct {
	Sessions     int           `json:"sessions"` // live sessions
	Goroutines   int           `json:"goroutines"`
	HeapInuse    uint64        `json:"heap_inuse"`
	StackInuse   uint64        `json:"stack_inuse"`
	NumGC        uint32        `json:"num_gc"`
	TotalAlloc   uint64        `json:"total_alloc"`
	GCPauseTotal time.Duration `json:"gc_pause_total_ns"`
	// VoiceGateway is parley_voice_gateway_added_seconds: speech end to
	// the first audio written, minus the turn detector's silence wait and
	// the time inside engines (what metadata.parley.voice.gateway_ms
	// carries), per spoken answer.
	VoiceGateway Histogram `json:"voice_gateway"`
	// Errors counts the error events the gateway sent, by code
	// (parley_realtime_errors_total); SlowClients the sessions it closed
	// because the client did not read.
	Errors      map[string]float64 `json:"errors"`
	SlowClients float64            `json:"slow_clients"`
	// Responses counts finished responses by status.
	Responses map[string]float64 `json:"responses"`
}

// Histogram is a Prometheus histogram's state: cumulative bucket counts.
type Histogram struct {
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum_seconds"`
	Bounds  []float64 `json:"bounds_seconds"` // upper bounds; +Inf is implied
	Buckets []uint64  `json:"buckets"`        // cumulative counts
}

// Quantile is the upper bound of the bucket holding quantile q (seconds;
// +Inf beyond the last bound, NaN without observations).
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(h.Count)))
	for i, c := range h.Buckets {
		if c >= rank {
			return h.Bounds[i]
		}
	}
	return math.Inf(1)
}

// Sub returns h less an earlier state of the same histogram.
func (h Histogram) Sub(earlier Histogram) Histogram {
	if len(earlier.Buckets) != len(h.Buckets) {
		return h
	}
	out := Histogram{Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum, Bounds: h.Bounds, Buckets: make([]uint64, len(h.Buckets))}
	for i := range h.Buckets {
		out.Buckets[i] = h.Buckets[i] - earlier.Buckets[i]
	}
	return out
}

// Mean is the exact mean (seconds; NaN without observations).
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / float64(h.Count)
}

func gatherMetrics(gw *gateway.Server, s *ChildStats) {
	mfs, err := gw.Registry().Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "parley_voice_gateway_added_seconds":
			for _, m := range mf.GetMetric() {
				s.VoiceGateway = histogramOf(m.GetHistogram())
			}
		case "parley_realtime_errors_total":
			for _, m := range mf.GetMetric() {
				s.Errors[label(m, "code")] += m.GetCounter().GetValue()
			}
		case "parley_realtime_slow_clients_total":
			for _, m := range mf.GetMetric() {
				s.SlowClients += m.GetCounter().GetValue()
			}
		case "parley_realtime_responses_total":
			if s.Responses == nil {
				s.Responses = map[string]float64{}
			}
			for _, m := range mf.GetMetric() {
				s.Responses[label(m, "status")] += m.GetCounter().GetValue()
			}
		}
	}
}

func histogramOf(h *dto.Histogram) Histogram {
	out := Histogram{Count: h.GetSampleCount(), Sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		out.Bounds = append(out.Bounds, b.GetUpperBound())
		out.Buckets = append(out.Buckets, b.GetCumulativeCount())
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
