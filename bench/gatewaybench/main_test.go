package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the benchmark's child process:
// the harness re-executes os.Executable() with -serve.
func TestMain(m *testing.M) {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness in -quick mode, children included, and
// checks that the report has numbers. It is kept small: make test runs it
// under -race on two cores.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes and runs load for ~15s")
	}
	t.Cleanup(func() {
		if pids := runningChildren(); len(pids) > 0 {
			t.Errorf("children still running after the harness returned: %v", pids)
		}
	})
	jsonFile := filepath.Join(t.TempDir(), "results.json")
	var stdout bytes.Buffer
	stderr := &syncWriter{t: t}
	start := time.Now()
	code := harnessMain([]string{"-quick", "-duration", "1s", "-idle", "200", "-json", jsonFile}, &stdout, stderr)
	t.Logf("harness took %s; report:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("harness exit code %d", code)
	}
	for _, want := range []string{"Latency per text turn", "Memory per idle session", "Targets", "p99(gateway)/p99(echo) at 10 sessions"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}

	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(rep.Levels) != 2 || rep.Levels[0].Sessions != 1 || rep.Levels[1].Sessions != 10 {
		t.Fatalf("levels %+v, want 1 and 10 sessions", rep.Levels)
	}
	for _, l := range rep.Levels {
		for _, lr := range []*LevelRun{l.Echo, l.Gateway} {
			if lr == nil {
				t.Fatalf("level %d lacks a server run", l.Sessions)
			}
			if lr.Errors != 0 || lr.Connected != l.Sessions {
				t.Errorf("%s at %d sessions: %d errors %v, %d connected", lr.Server, l.Sessions, lr.Errors, lr.ErrorSamples, lr.Connected)
			}
			s := lr.First
			if s.Count == 0 || s.P50 <= 0 || s.P99 < s.P50 || s.Max < s.P99 {
				t.Errorf("%s at %d sessions: latency stats %+v", lr.Server, l.Sessions, s)
			}
			if lr.ServerCPUPerTurnUS <= 0 || lr.ServerWritesPerTurn <= 0 {
				t.Errorf("%s at %d sessions: no cost figures: %+v", lr.Server, l.Sessions, lr)
			}
		}
		if l.Gateway.Done.P50 < l.Gateway.First.P50 || l.Gateway.ServerGateway.Count == 0 {
			t.Errorf("gateway at %d sessions: done %+v first %+v srv %+v", l.Sessions, l.Gateway.Done, l.Gateway.First, l.Gateway.ServerGateway)
		}
		if l.RatioP99 <= 0 {
			t.Errorf("level %d: no p99 ratio", l.Sessions)
		}
	}
	if len(rep.Idle) != 2 {
		t.Fatalf("idle results %+v, want echo and gateway", rep.Idle)
	}
	for _, i := range rep.Idle {
		if i.Connections != 200 || i.ServerSeen != 200 || i.DialErrors != 0 {
			t.Errorf("%s idle: %d connections, server saw %d, %d dial errors %v", i.Server, i.Connections, i.ServerSeen, i.DialErrors, i.ErrorSample)
		}
		// RSS growth is not checked: at 200 connections it is a few MiB,
		// within what the runtime returns to the OS between the two
		// readings on a busy machine (seen: -2.6 KiB per connection while
		// the heap released 12 MiB). Heap+stack growth is exact.
		if i.Before.RSS == 0 || i.After.RSS == 0 || i.HeapStackKiB <= 0 || i.GoroutinesPer < 0.9 {
			t.Errorf("%s idle: implausible memory figures %+v", i.Server, i)
		}
	}
	if len(rep.Targets) != 2 {
		t.Errorf("targets %+v, want 2", rep.Targets)
	}
}

func TestStats(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := statsOf(ds)
	if s.Count != 100 || s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond ||
		s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond || s.Mean != 50500*time.Microsecond {
		t.Fatalf("stats %+v", s)
	}
	if s := statsOf(nil); s.Count != 0 || s.P99 != 0 {
		t.Fatalf("empty stats %+v", s)
	}
	b, _ := json.Marshal(statsOf([]time.Duration{1500 * time.Microsecond}))
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil || back.P99 != 1500*time.Microsecond {
		t.Fatalf("round trip %s -> %+v, %v", b, back, err)
	}
}

func TestWireParsing(t *testing.T) {
	if got := eventType([]byte(`{"type":"response.output_text.delta","event_id":"e1"}`)); got != "response.output_text.delta" {
		t.Errorf("fast path: %q", got)
	}
	if got := eventType([]byte(`{"event_id":"e1","type":"response.done"}`)); got != "response.done" {
		t.Errorf("slow path: %q", got)
	}
	done := []byte(`{"type":"response.done","response":{"metadata":{"parley":{"first_token_ms":0.2,"gateway_ms":0.125,"total_ms":1}}}}`)
	if got := gatewayMS(done); got != 125*time.Microsecond {
		t.Errorf("gatewayMS = %s", got)
	}
	if got := gatewayMS([]byte(`{"type":"response.done"}`)); got != -1 {
		t.Errorf("gatewayMS without metadata = %s", got)
	}
}

func TestFlags(t *testing.T) {
	var out, errw bytes.Buffer
	for _, args := range [][]string{{"-store", "nope"}, {"-levels", "0"}, {"-think", "2s"}, {"-idle", "50000"}, {"extra"}} {
		errw.Reset()
		if code := harnessMain(args, &out, &errw); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errw.String())
		}
	}
}

// syncWriter sends the harness's progress lines to the test log.
type syncWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
