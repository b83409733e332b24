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
	"strings"
	"sync"
	"syscall"
	"time"

	"parley/bench/internal/childio"
	"parley/bench/internal/procstat"
)

// child is a gateway process started by the harness.
type child struct {
	name  string // for logs: which transport it serves
	addr  string // host:port of its HTTP listener
	pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string        // temp dir (SQLite), removed by the child and again on stop
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done
	once  sync.Once
}

// startChild re-executes this binary as a gateway child and waits for the
// address it listens on. speak is the audio length of the agent's answer.
func startChild(ctx context.Context, cfg *Config, name string, speak time.Duration, logw io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, done: make(chan struct{})}
	if c.dir, err = os.MkdirTemp("", "callbench-*"); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(exe, "-serve", "-dir", c.dir, "-tts-chunk", cfg.TTSChunk.String(),
		"-tts-lead", cfg.TTSLead.String(), "-tts-audio", cfg.TTSAudio, "-fixtures", cfg.Fixtures, "-speak", speak.String())
	// The child exits when its stdin reaches EOF, which also happens when
	// the harness dies; Pdeathsig makes the kernel send SIGTERM then as
	// well. stop escalates to SIGKILL.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	c.cmd.Env = append(os.Environ(), "GOTRACEBACK=all", "GORACE="+gorace)
	lines := childio.NewFirstLine()
	c.cmd.Stdout = lines
	c.cmd.Stderr = &childio.PrefixWriter{W: logw, Prefix: "[" + name + " child] "}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		c.removeDir()
		return nil, fmt.Errorf("starting the %s child: %w", name, err)
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
			return nil, fmt.Errorf("%s child printed %q, want ADDR host:port", name, line)
		}
		c.addr = addr
		return c, nil
	case <-c.done:
		c.stop()
		return nil, fmt.Errorf("%s child exited before listening: %v", name, c.err)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("%s child did not listen within 30s", name)
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
		return fmt.Errorf("%s child exited unexpectedly: %v", c.name, c.err)
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

func (c *child) base() string { return "http://" + c.addr }

var ctlClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

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

// stats asks the child for its runtime figures (after two GCs when gc).
func (c *child) stats(ctx context.Context, gc bool) (ChildStats, error) {
	var s ChildStats
	q := ""
	if gc {
		q = "?gc=1"
	}
	b, err := c.get(ctx, "/debug/bench"+q)
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(b, &s)
	return s, err
}

// saveProfile fetches a pprof profile from the child into file.
func (c *child) saveProfile(ctx context.Context, path, file string) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// waitSessions polls until the child reports want live sessions or limit
// passes; it returns the last count.
func (c *child) waitSessions(ctx context.Context, want int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		s, err := c.stats(ctx, false)
		if err != nil {
			return 0, err
		}
		if s.Sessions == want || time.Now().After(deadline) {
			return s.Sessions, nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return s.Sessions, ctx.Err()
		}
	}
}

// cpu returns the child's CPU time so far: utime + stime of
// /proc/PID/stat (clock ticks of 10 ms).
func (c *child) cpu() (time.Duration, error) { return procstat.ProcCPU(c.pid) }

// rss returns the child's VmRSS in bytes (/proc/PID/status).
func (c *child) rss() (uint64, error) { return procstat.StatusKB(c.pid, "VmRSS:") }

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

// machineBusy is the machine's busy CPU time (interrupt time left out:
// the kernel charges loopback softirq work there).
func machineBusy() time.Duration {
	busy, _ := procstat.MachineTimes()
	return busy
}
