package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// IdleResult is the memory an idle connection costs a server.
type IdleResult struct {
	Server      string   `json:"server"`
	Requested   int      `json:"requested"`
	Connections int      `json:"connections"` // established (and, for the gateway, got session.created)
	ServerSeen  int      `json:"server_sessions"`
	DialErrors  int      `json:"dial_errors"`
	ErrorSample []string `json:"error_samples,omitempty"`
	DialTime    float64  `json:"dial_seconds"`
	Before      MemStats `json:"before"`
	After       MemStats `json:"after"`
	// Per connection, in KiB: (after-before)/connections.
	RSSKiB        float64 `json:"rss_kib_per_session"`
	HeapStackKiB  float64 `json:"heap_stack_kib_per_session"`
	HeapKiB       float64 `json:"heap_inuse_kib_per_session"`
	StackKiB      float64 `json:"stack_inuse_kib_per_session"`
	GoroutinesPer float64 `json:"goroutines_per_session"`
}

// idleMemory starts a fresh child, opens cfg.Idle idle connections to it and
// reports what they cost it.
func idleMemory(ctx context.Context, cfg *Config, kind string, logw io.Writer, progress func(string, ...any)) (IdleResult, error) {
	r := IdleResult{Server: kind, Requested: cfg.Idle}
	c, err := startChild(ctx, kind, cfg.Store, logw)
	if err != nil {
		return r, err
	}
	defer c.stop()
	t := targetOf(c)

	// Warm the server with one connection so one-time costs (first
	// handshake, lazily built tables, pools) fall in the baseline.
	if conn, _, err := t.dial(ctx); err == nil {
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}
	if _, err := c.waitSessions(ctx, 0, 5*time.Second); err != nil {
		return r, err
	}
	if r.Before, err = c.mem(ctx, true); err != nil {
		return r, fmt.Errorf("%s: benchmem before: %w", kind, err)
	}

	if cfg.IdleTurns > 0 {
		progress("%s: opening %d connections (%d dials in parallel), %d turn(s) each, then idle", kind, cfg.Idle, cfg.DialConc, cfg.IdleTurns)
	} else {
		progress("%s: opening %d idle connections (%d dials in parallel)", kind, cfg.Idle, cfg.DialConc)
	}
	conns := make([]*websocket.Conn, cfg.Idle)
	var next, failed atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	for range cfg.DialConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) || dctx.Err() != nil {
					return
				}
				conn, rd, err := t.dial(dctx)
				if err == nil && cfg.IdleTurns > 0 {
					err = idleTurns(dctx, cfg, t, conn, rd)
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(r.ErrorSample) < 5 {
						r.ErrorSample = append(r.ErrorSample, err.Error())
					}
					mu.Unlock()
					continue
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	cancel()
	r.DialTime = time.Since(started).Seconds()
	r.DialErrors = int(failed.Load())
	defer closeAll(conns, cfg.DialConc)
	for _, conn := range conns {
		if conn != nil {
			r.Connections++
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.Connections == 0 {
		return r, fmt.Errorf("%s: no idle connection could be opened: %v", kind, r.ErrorSample)
	}
	progress("%s: %d connections open in %.1fs (%d failed); measuring", kind, r.Connections, r.DialTime, r.DialErrors)
	if r.ServerSeen, err = c.waitSessions(ctx, r.Connections, 20*time.Second); err != nil {
		return r, err
	}
	time.Sleep(500 * time.Millisecond) // let handshake garbage become garbage
	if r.After, err = c.mem(ctx, true); err != nil {
		return r, fmt.Errorf("%s: benchmem after: %w", kind, err)
	}
	if cfg.Profile != "" && kind == "gateway" {
		file := filepath.Join(cfg.Profile, "gateway-idle-heap.pprof")
		if err := c.saveProfile(ctx, "/debug/pprof/heap", file); err != nil {
			progress("gateway: heap profile: %v", err)
		} else {
			progress("gateway: heap profile with %d idle sessions saved to %s", r.Connections, file)
		}
		file = filepath.Join(cfg.Profile, "gateway-idle-goroutines.txt")
		if err := c.saveProfile(ctx, "/debug/pprof/goroutine?debug=1", file); err == nil {
			progress("gateway: goroutine profile saved to %s", file)
		}
	}
	n := float64(r.Connections)
	kib := func(after, before uint64) float64 { return (float64(after) - float64(before)) / n / 1024 }
	r.RSSKiB = kib(r.After.RSS, r.Before.RSS)
	r.HeapKiB = kib(r.After.HeapInuse, r.Before.HeapInuse)
	r.StackKiB = kib(r.After.StackInuse, r.Before.StackInuse)
	r.HeapStackKiB = r.HeapKiB + r.StackKiB
	r.GoroutinesPer = float64(r.After.Goroutines-r.Before.Goroutines) / n
	return r, c.alive()
}

// idleTurns runs cfg.IdleTurns turns on a fresh connection before it goes
// idle (-idle-turns), to measure sessions that have been used.
func idleTurns(ctx context.Context, cfg *Config, t target, conn *websocket.Conn, rd *eventReader) error {
	turn := echoTurn
	if t.kind == "gateway" {
		turn = gatewayTurn
	}
	for range cfg.IdleTurns {
		tctx, cancel := context.WithTimeout(ctx, cfg.TurnLimit)
		_, err := turn(tctx, conn, rd)
		cancel()
		if err != nil {
			conn.CloseNow()
			return err
		}
	}
	return nil
}

// closeAll drops the connections, workers at a time.
func closeAll(conns []*websocket.Conn, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if conns[i] != nil {
					conns[i].CloseNow()
				}
			}
		}()
	}
	wg.Wait()
}
