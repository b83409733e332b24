package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"parley/bench/internal/childio"
	"parley/replay"
)

// child is a gateway process started by the harness.
type child struct {
	addr  string // host:port of its HTTP listener
	pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string        // temp dir (SQLite), removed by the child and again on stop
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done
	once  sync.Once
	// offline: the real parleyd (its stats from /metrics, no profile, no
	// stdin; SIGTERM ends it).
	offline bool
}

// key and agent are what the replay sessions present to this child.
func (c *child) key() string {
	if c.offline {
		return parleydKey
	}
	return benchKey
}

func (c *child) name() string {
	if c.offline {
		return "parleyd"
	}
	return "gateway child"
}

func (c *child) agent() string {
	if c.offline {
		return parleydAgent
	}
	return agentID
}

// startServer starts the step's server: the fake-engine gateway child or
// parleyd with the offline engines.
func startServer(ctx context.Context, cfg *Config, logw io.Writer) (*child, error) {
	if cfg.Engines == enginesOffline {
		return startParleyd(ctx, cfg, logw)
	}
	return startChild(ctx, cfg.Transport == replay.TransportWebRTC, logw)
}

// startChild re-executes this binary as a gateway child and waits for the
// address it listens on.
func startChild(ctx context.Context, withRTC bool, logw io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{done: make(chan struct{})}
	if c.dir, err = os.MkdirTemp("", "replaybench-*"); err != nil {
		return nil, err
	}
	args := []string{"-serve", "-dir", c.dir}
	if withRTC {
		args = append(args, "-rtc")
	}
	c.cmd = exec.Command(exe, args...)
	// The child exits when its stdin reaches EOF, which also happens when
	// the harness dies; Pdeathsig makes the kernel send SIGTERM then as
	// well. stop escalates to SIGKILL.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// A -race child (the test) would otherwise sleep 1s at exit.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	c.cmd.Env = append(os.Environ(), "GOTRACEBACK=all", "GORACE="+gorace)
	lines := childio.NewFirstLine()
	c.cmd.Stdout = lines
	c.cmd.Stderr = &childio.PrefixWriter{W: logw, Prefix: "[gateway child] "}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		c.removeDir()
		return nil, fmt.Errorf("starting the gateway child: %w", err)
	}
	c.pid = c.cmd.Process.Pid
	registerChild(c)
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case line := <-lines.Lines:
		addr, ok := strings.CutPrefix(line, "ADDR ")
		if !ok {
			c.stop()
			return nil, fmt.Errorf("the gateway child printed %q, want ADDR host:port", line)
		}
		c.addr = addr
		return c, nil
	case <-c.done:
		c.stop()
		return nil, fmt.Errorf("the gateway child exited before listening: %v", c.err)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("the gateway child did not listen within 30s")
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

var (
	childrenMu sync.Mutex
	children   []*child
)

func registerChild(c *child) {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	children = append(children, c)
}

// runningChildren returns the pids of started children that have not exited.
func runningChildren() []int {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	var pids []int
	for _, c := range children {
		select {
		case <-c.done:
		default:
			pids = append(pids, c.pid)
		}
	}
	return pids
}

// alive reports an error if the child has exited.
func (c *child) alive() error {
	select {
	case <-c.done:
		return fmt.Errorf("the gateway child exited unexpectedly: %v", c.err)
	default:
		return nil
	}
}

// stop ends the child: stdin EOF asks it to exit, SIGKILL follows after 5s.
// It is idempotent and always waits for the process to be gone.
func (c *child) stop() {
	c.once.Do(func() {
		if c.stdin != nil {
			_ = c.stdin.Close()
		}
		if c.offline {
			c.stopSignal()
		}
		t := time.NewTimer(5 * time.Second)
		select {
		case <-c.done:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		t.Stop()
		c.removeDir()
	})
}

func (c *child) removeDir() {
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *child) base() string { return "http://" + c.addr }

var ctlClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}

func (c *child) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := ctlClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b[:min(len(b), 200)]))
	}
	return b, err
}

// stats asks the child for its runtime figures and the gateway's counters.
func (c *child) stats(ctx context.Context) (ChildStats, error) {
	if c.offline {
		return parleydStats(ctx, c)
	}
	var s ChildStats
	b, err := c.get(ctx, "/debug/bench")
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(b, &s)
	return s, err
}

// profile fetches a CPU profile of secs seconds from the child.
func (c *child) profile(ctx context.Context, secs int) ([]byte, error) {
	return c.get(ctx, "/debug/pprof/profile?seconds="+strconv.Itoa(secs))
}

// waitSessions polls until the child has no live session or limit passes;
// it returns the last count.
func (c *child) waitIdle(ctx context.Context, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		s, err := c.stats(ctx)
		if err != nil {
			return 0, err
		}
		if s.Sessions == 0 || time.Now().After(deadline) {
			return s.Sessions, nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return s.Sessions, ctx.Err()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
