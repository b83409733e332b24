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
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"parley/bench/internal/childio"
)

// child is a server process started by the harness.
type child struct {
	kind  string
	addr  string // host:port it listens on
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string        // temp dir owned by the harness (SQLite file), removed on stop
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done
	once  sync.Once
}

// startChild re-executes this binary as a server child and waits for the
// address it listens on.
func startChild(ctx context.Context, kind, store string, logw io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{kind: kind, done: make(chan struct{})}
	args := []string{"-serve", kind, "-addr", "127.0.0.1:0"}
	if kind == "gateway" {
		args = append(args, "-store", store)
		if store == "sqlite" {
			if c.dir, err = os.MkdirTemp("", "gatewaybench-*"); err != nil {
				return nil, err
			}
			args = append(args, "-db", filepath.Join(c.dir, "parley.db"), "-tmpdir", c.dir)
		}
	}
	c.cmd = exec.Command(exe, args...)
	// The child exits when its stdin reaches EOF, which also happens when
	// the harness dies without running its deferred stops; Pdeathsig makes
	// the kernel send SIGTERM then as well. stop escalates to SIGKILL.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// A -race child (the smoke test) would otherwise sleep 1s at exit.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	c.cmd.Env = append(os.Environ(), "GOTRACEBACK=all", "GORACE="+gorace)
	lines := childio.NewFirstLine()
	c.cmd.Stdout = lines
	c.cmd.Stderr = &childio.PrefixWriter{W: logw, Prefix: "[" + kind + " child] "}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		c.removeDir()
		return nil, fmt.Errorf("starting %s child: %w", kind, err)
	}
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
			return nil, fmt.Errorf("%s child printed %q, want ADDR host:port", kind, line)
		}
		c.addr = addr
		return c, nil
	case <-c.done:
		c.stop()
		return nil, fmt.Errorf("%s child exited before listening: %v", kind, c.err)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("%s child did not listen within 30s", kind)
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
			pids = append(pids, c.cmd.Process.Pid)
		}
	}
	return pids
}

// alive reports an error if the child has exited.
func (c *child) alive() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s child exited unexpectedly: %v", c.kind, c.err)
	default:
		return nil
	}
}

// stop ends the child: stdin EOF asks it to exit, SIGKILL follows after 5s.
// It is idempotent and always waits for the process to be gone.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
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

var ctlClient = &http.Client{Timeout: 2 * time.Minute}

// mem asks the child for its memory figures (after two GCs when gc is set).
func (c *child) mem(ctx context.Context, gc bool) (MemStats, error) {
	var ms MemStats
	q := ""
	if !gc {
		q = "?gc=0"
	}
	b, err := c.get(ctx, "/debug/benchmem"+q)
	if err != nil {
		return ms, err
	}
	err = json.Unmarshal(b, &ms)
	return ms, err
}

func (c *child) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
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

// saveProfile fetches a pprof profile from the child into file.
func (c *child) saveProfile(ctx context.Context, path, file string) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// waitSessions polls until the child reports want live sessions.
func (c *child) waitSessions(ctx context.Context, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		ms, err := c.mem(ctx, false)
		if err != nil {
			return 0, err
		}
		if ms.Sessions == want || time.Now().After(deadline) {
			return ms.Sessions, nil
		}
		select {
		case <-ctx.Done():
			return ms.Sessions, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
