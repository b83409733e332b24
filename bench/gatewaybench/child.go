package main

// The server side of the benchmark: this binary re-executed with
// "-serve gateway|echo". The child prints "ADDR host:port" on stdout once it
// listens, serves until its stdin reaches EOF (the harness closes it, or
// died), then exits.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"parley/agent"
	"parley/bench/internal/procstat"
	"parley/gateway"
	"parley/storage"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

func isChild(args []string) bool {
	return len(args) > 0 && (args[0] == "-serve" || strings.HasPrefix(args[0], "-serve="))
}

func childMain(args []string) int {
	fs := flag.NewFlagSet("gatewaybench -serve", flag.ContinueOnError)
	kind := fs.String("serve", "", "gateway or echo")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	store := fs.String("store", "sqlite", "gateway storage: sqlite or mem")
	db := fs.String("db", "", "SQLite file (for -store sqlite)")
	tmpdir := fs.String("tmpdir", "", "directory to remove on exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tmpdir != "" {
		defer os.RemoveAll(*tmpdir)
	}
	// The harness ends us by closing stdin; SIGTERM (also sent by the kernel
	// if the harness dies: Pdeathsig) and SIGINT end us the same way, so the
	// temp dir goes with us.
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s child: %v\n", *kind, err)
		return 1
	}
	procstat.RaiseNofile()

	ctx := context.Background()
	mux := http.NewServeMux()
	var active func() int
	switch *kind {
	case "gateway":
		st, err := openStore(ctx, *store, *db)
		if err != nil {
			return fail(err)
		}
		defer st.Close()
		auth, _, err := gateway.BootstrapKeys(ctx, st, benchKey)
		if err != nil {
			return fail(err)
		}
		kr, err := benchKeyring(st)
		if err != nil {
			return fail(err)
		}
		gw, err := gateway.New(gateway.Options{
			Sealer: kr,
			Agents: map[string]*agent.Agent{"bench": {
				ID: "bench", Name: "Bench", Instructions: "You are a benchmark agent. Answer briefly.",
				Responder: zeroAgent{},
			}},
			Store: st, Auth: auth, Logger: zerolog.Nop(), MaxSessions: 20000,
		})
		if err != nil {
			return fail(err)
		}
		mux.Handle("/", gw.Handler())
		active = gw.ActiveSessions
	case "echo":
		var n atomic.Int64
		mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) { echo(w, r, &n) })
		active = func() int { return int(n.Load()) }
	default:
		return fail(fmt.Errorf("-serve %q: want gateway or echo", *kind))
	}
	mux.HandleFunc("GET /debug/benchmem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(readMem(active(), r.URL.Query().Get("gc") != "0"))
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())

	// Serve until told to stop. Exiting without draining is fine: the
	// harness is done with us.
	select {
	case <-stop:
	case <-sigs:
	}
	return 0
}

func openStore(ctx context.Context, kind, path string) (storage.Store, error) {
	switch kind {
	case "mem":
		return newMemStore(), nil
	case "sqlite":
		if path == "" {
			return nil, errors.New("-db is required with -store sqlite")
		}
		return sqlite.Open(ctx, path)
	}
	return nil, fmt.Errorf("-store %q: want sqlite or mem", kind)
}

// echo is the raw baseline: accept, then read a message and write it back
// until the connection ends.
func echo(w http.ResponseWriter, r *http.Request, active *atomic.Int64) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	active.Add(1)
	defer active.Add(-1)
	defer c.CloseNow()
	ctx := context.Background()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// zeroAgent answers at once: a fixed twelve-word reply in three deltas.
type zeroAgent struct{}

var zeroReply = []string{"Sure, here is a short ", "answer to your question, ", "with exactly twelve words."}

func (zeroAgent) Respond(ctx context.Context, req *agent.Request, emit func(string) error) (agent.Usage, error) {
	for _, d := range zeroReply {
		if err := emit(d); err != nil {
			return agent.Usage{}, err
		}
	}
	in := len(req.Instructions)
	for _, m := range req.History {
		in += len(m.Text)
	}
	return agent.Usage{InputTokens: (in + 3) / 4, OutputTokens: 16}, nil
}

// MemStats is what /debug/benchmem reports, after two GCs when gc is set.
type MemStats struct {
	Sessions     int    `json:"sessions"` // live gateway sessions / echo connections
	Goroutines   int    `json:"goroutines"`
	HeapInuse    uint64 `json:"heap_inuse"`
	HeapAlloc    uint64 `json:"heap_alloc"`
	HeapSys      uint64 `json:"heap_sys"`
	HeapReleased uint64 `json:"heap_released"`
	StackInuse   uint64 `json:"stack_inuse"`
	Sys          uint64 `json:"sys"`
	RSS          uint64 `json:"rss"`     // VmRSS
	RSSPeak      uint64 `json:"rss_hwm"` // VmHWM
	NumGC        uint32 `json:"num_gc"`
	TotalAlloc   uint64 `json:"total_alloc"`
	Mallocs      uint64 `json:"mallocs"`
	GCPauseTotal uint64 `json:"gc_pause_total_ns"`
	NoFile       uint64 `json:"nofile_soft"`
	// Process counters, for per-turn costs: CPU time (getrusage) and
	// read/write system calls (/proc/self/io syscr, syscw).
	CPUUser time.Duration `json:"cpu_user_ns"`
	CPUSys  time.Duration `json:"cpu_sys_ns"`
	SysCR   uint64        `json:"syscr"`
	SysCW   uint64        `json:"syscw"`
}

func readMem(sessions int, gc bool) MemStats {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	ms := MemStats{
		Sessions: sessions, Goroutines: runtime.NumGoroutine(),
		HeapInuse: m.HeapInuse, HeapAlloc: m.HeapAlloc, HeapSys: m.HeapSys, HeapReleased: m.HeapReleased,
		StackInuse: m.StackInuse, Sys: m.Sys, NumGC: m.NumGC,
		TotalAlloc: m.TotalAlloc, Mallocs: m.Mallocs, GCPauseTotal: m.PauseTotalNs,
	}
	ms.RSS, ms.RSSPeak = procStatus("VmRSS:"), procStatus("VmHWM:")
	ms.CPUUser, ms.CPUSys = cpuTimes()
	ms.SysCR, ms.SysCW = procIO()
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		ms.NoFile = lim.Cur
	}
	return ms
}

// procStatus returns a "kB" field of /proc/self/status in bytes.
func procStatus(field string) uint64 {
	f, err := os.Open(filepath.Join("/proc", "self", "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}

// cpuTimes returns the process's user and system CPU time.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// procIO returns the read and write system call counts of the process
// (/proc/self/io syscr and syscw; 0 when unavailable).
func procIO() (syscr, syscw uint64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			syscr = n
		case "syscw":
			syscw = n
		}
	}
	return syscr, syscw
}

// benchKeyring seals what the gateway stores, as parleyd does, under a
// master key made for the run.
func benchKeyring(st storage.Store) (*seal.Keyring, error) {
	ks, ok := st.(seal.KeyStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no data keys", st)
	}
	mk, err := seal.NewMasterKey("bench")
	if err != nil {
		return nil, err
	}
	return seal.NewKeyring(ks, []seal.MasterKey{mk}, seal.Options{})
}
