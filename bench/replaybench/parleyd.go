package main

// The second scenario's server: the real parleyd binary (built once per run
// with go build) with the repository's configs/parley.yaml, that is the
// offline engines (pocketsphinx recognizer, espeak-ng synthesizer, the
// knowledge-base agent "assistant"), real SQLite in a temp dir and a
// sealer. parleyd serves no pprof and no /debug/bench: the harness reads
// the same figures from its /metrics (Prometheus text), and its CPU and
// RSS from /proc like the fake child's. A fresh parleyd serves each step.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"parley/bench/internal/childio"
)

const (
	enginesFake    = "fake"
	enginesOffline = "offline"
	enginesBoth    = "both"

	// parleydKey is the secret API key (32 characters) parleyd accepts.
	parleydKey = "sk_replaybench_offline_01234567"
	// parleydAgent is configs/parley.yaml's agent on the offline engines.
	parleydAgent = "assistant"
	// parleydMasterKey is a 32-byte master key, id:base64.
	parleydMasterKey = "test-mk:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY="
)

// Where make deps puts what the offline engines need.
const (
	pocketsphinxModel = "/usr/share/pocketsphinx/model/en-us/en-us"
	espeakLibGlob     = "/usr/lib/*/libespeak-ng.so*"
)

// offlineMissing says what the offline engines lack on this machine ("" when
// nothing).
func offlineMissing() string {
	var miss []string
	if _, err := os.Stat(pocketsphinxModel); err != nil {
		miss = append(miss, "pocketsphinx's en-us model ("+pocketsphinxModel+")")
	}
	if m, _ := filepath.Glob(espeakLibGlob); len(m) == 0 {
		miss = append(miss, "libespeak-ng")
	}
	if _, err := exec.LookPath("go"); err != nil {
		miss = append(miss, "the go command (to build parleyd)")
	}
	return strings.Join(miss, ", ")
}

// repoRoot is the module root of parley above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module parley")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("not inside the parley module (no go.mod above the working directory)")
		}
		dir = up
	}
}

// buildParleyd builds ./cmd/parleyd into dir.
func buildParleyd(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "parleyd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/parleyd")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/parleyd: %v: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}

// freeAddr picks a free loopback TCP port (parleyd does not report the
// port it bound for 127.0.0.1:0).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startParleyd starts cfg.Parleyd and waits for its /readyz.
func startParleyd(ctx context.Context, cfg *Config, logw io.Writer) (*child, error) {
	var c *child
	var err error
	// The port is free when picked but another process may take it before
	// parleyd binds it: try a few.
	for range 3 {
		if c, err = startParleydOnce(ctx, cfg, logw); err == nil || ctx.Err() != nil {
			return c, err
		}
	}
	return nil, err
}

func startParleydOnce(ctx context.Context, cfg *Config, logw io.Writer) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c := &child{addr: addr, done: make(chan struct{}), offline: true}
	if c.dir, err = os.MkdirTemp("", "replaybench-parleyd-*"); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(cfg.Parleyd, "-config", cfg.ParleydConfig)
	if c.cmd.Dir, err = repoRoot(); err != nil { // knowledge_dir is relative to it
		c.removeDir()
		return nil, err
	}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	c.cmd.Env = append(env,
		"PARLEY_HTTP_ADDR="+addr,
		"PARLEY_STORAGE_URL="+filepath.Join(c.dir, "p.db"),
		"PARLEY_API_KEY="+parleydKey,
		"PARLEY_MASTER_KEY="+parleydMasterKey,
		"PARLEY_WEBRTC_UDP_ADDRESS=", // WebRTC off
		"PARLEY_LOG_LEVEL=warn",
		// The load opens sessions faster than a client should.
		"PARLEY_REALTIME_KEY_REQUESTS_PER_SECOND=0",
		"PARLEY_REALTIME_IP_REQUESTS_PER_SECOND=0",
	)
	c.cmd.Stdout = io.Discard // the banner
	c.cmd.Stderr = &childio.PrefixWriter{W: logw, Prefix: "[parleyd] "}
	if err := c.cmd.Start(); err != nil {
		c.removeDir()
		return nil, fmt.Errorf("starting parleyd: %w", err)
	}
	c.pid = c.cmd.Process.Pid
	registerChild(c)
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.get(ctx, "/readyz"); err == nil {
			return c, nil
		}
		select {
		case <-c.done:
			c.stop()
			return nil, fmt.Errorf("parleyd exited before it was ready: %v", c.err)
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("parleyd was not ready within 60s")
		}
	}
}

// parleydStats reads the figures of ChildStats from parleyd's /metrics.
func parleydStats(ctx context.Context, c *child) (ChildStats, error) {
	b, err := c.get(ctx, "/metrics")
	if err != nil {
		return ChildStats{}, err
	}
	return parseMetrics(b)
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseMetrics picks ChildStats's figures out of the Prometheus text
// format.
func parseMetrics(b []byte) (ChildStats, error) {
	s := ChildStats{Errors: map[string]float64{}, Responses: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		labels := map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, rest = line[:i], line[j+1:]
			for _, m := range labelRE.FindAllStringSubmatch(line[i+1:j], -1) {
				labels[m[1]] = m[2]
			}
		} else if i := strings.IndexAny(line, " \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		seen++
		switch name {
		case "parley_realtime_sessions_active":
			s.Sessions = int(v)
		case "go_goroutines":
			s.Goroutines = int(v)
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = uint64(v)
		case "go_memstats_stack_inuse_bytes":
			s.StackInuse = uint64(v)
		case "go_gc_duration_seconds_count":
			s.NumGC = uint32(v)
		case "go_memstats_alloc_bytes_total":
			s.TotalAlloc = uint64(v)
		case "parley_voice_gateway_added_seconds_bucket":
			le := labels["le"]
			if le == "+Inf" {
				continue
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			s.VoiceGateway.Bounds = append(s.VoiceGateway.Bounds, bound)
			s.VoiceGateway.Buckets = append(s.VoiceGateway.Buckets, uint64(v))
		case "parley_voice_gateway_added_seconds_sum":
			s.VoiceGateway.Sum = v
		case "parley_voice_gateway_added_seconds_count":
			s.VoiceGateway.Count = uint64(v)
		case "parley_realtime_errors_total":
			s.Errors[labels["code"]] += v
		case "parley_realtime_slow_clients_total":
			s.SlowClients += v
		case "parley_realtime_responses_total":
			s.Responses[labels["status"]] += v
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if seen == 0 {
		return s, errors.New("/metrics: no samples")
	}
	return s, nil
}

// stopSignal ends parleyd with SIGTERM (it drains, persists and exits).
func (c *child) stopSignal() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
}
