// Command authbench measures what authentication and rate limiting add to
// a request, and authenticated request throughput, in one run:
//
//   - the auth + limit step alone (access.KeyCache.Lookup of a secret key,
//     the per-key and per-IP token buckets), per request, from concurrent
//     goroutines: p50 / p99 / max;
//   - HTTP throughput and latency of an authenticated management route
//     (GET /v1/tenants/{id}/settings with a secret key) against an
//     unauthenticated one (GET /v1/openapi.json is larger; /healthz-like
//     cost is measured by a bare handler on the same server) over loopback,
//     same clients, same run;
//   - how often the database was asked for a key during it.
//
// `make bench` runs it after the call benchmark.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"parley/access"
	"parley/gateway"
	"parley/manage"
	"parley/storage"
	"parley/storage/sqlite"
)

func main() {
	clients := flag.Int("clients", 16, "concurrent HTTP clients")
	dur := flag.Duration("duration", 5*time.Second, "measured time per route")
	ops := flag.Int("ops", 200000, "auth+limit steps measured in the micro benchmark")
	flag.Parse()
	if err := run(*clients, *dur, *ops, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

func run(clients int, dur time.Duration, ops int, out io.Writer) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "authbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "a.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	if err := st.CreateTenant(ctx, &storage.Tenant{ID: "bench", Name: "Bench", Plan: storage.PlanEnterprise, CreatedAt: now}, ""); err != nil {
		return err
	}
	secret := gateway.NewSecretKey()
	if err := st.CreateKey(ctx, &storage.Key{ID: "key_bench", TenantID: "bench", Kind: storage.KeySecret, Prefix: secret[:gateway.KeyPrefixLen],
		Hash: gateway.HashKey(secret), Scopes: storage.OwnerKeyScopes(), CreatedAt: now}); err != nil {
		return err
	}
	keys := access.NewKeyCache(st)
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = keys.Run(kctx) }()
	defer func() { stop(); <-done }()

	fmt.Fprintf(out, "Parley auth benchmark: %s %s/%s, %d CPUs\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())

	// 1. The auth + limit step alone.
	perKey := access.NewLimiter(1e9, 1<<30, 0)
	perIP := access.NewLimiter(1e9, 1<<30, 0)
	step := func() error {
		k, err := keys.Lookup(ctx, secret)
		if err != nil {
			return err
		}
		perKey.Allow(k.ID)
		perIP.Allow("192.0.2.7")
		return nil
	}
	if err := step(); err != nil { // warm: the one database read
		return err
	}
	workers := runtime.NumCPU() * 4
	lat := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			l := make([]time.Duration, 0, ops/workers)
			for i := 0; i < ops/workers; i++ {
				t0 := time.Now()
				_ = step()
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}(w)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	p50, p99, mx := pct(all, 50), pct(all, 99), pct(all, 100)
	fmt.Fprintf(out, "Auth + rate limits per request (key cache lookup with SHA-256 and constant-time compare, per-key and per-IP buckets),\n")
	fmt.Fprintf(out, "  %d steps from %d goroutines: p50 %.2f µs, p99 %.2f µs, max %.1f µs\n", len(all), workers, us(p50), us(p99), us(mx))
	verdict := "MET"
	if p99 >= 50*time.Microsecond {
		verdict = "NOT MET"
	}
	fmt.Fprintf(out, "  target p99 < 50 µs: %s\n\n", verdict)

	// 2. HTTP: an authenticated management route against a bare handler.
	api, err := manage.New(manage.Options{Accounts: st, Keys: keys, Logger: zerolog.Nop(),
		Limits: manage.Limits{PerIP: manage.Rate{PerSecond: 1e9, Burst: 1 << 30}, PerPrincipal: manage.Rate{PerSecond: 1e9, Burst: 1 << 30}}})
	if err != nil {
		return err
	}
	defer api.Close()
	mux := http.NewServeMux()
	for _, rt := range api.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, api.Handler())
	}
	mux.HandleFunc("GET /bare", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"settings":{}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	before := keys.Lookups()
	bare := load(srv.URL+"/bare", "", clients, dur)
	authed := load(srv.URL+"/v1/tenants/bench/settings", secret, clients, dur)
	fmt.Fprintf(out, "HTTP over loopback, %d clients, %s each (keep-alive):\n", clients, dur)
	fmt.Fprintf(out, "  %-44s %9s %9s %9s %7s\n", "route", "req/s", "p50", "p99", "errors")
	for _, r := range []struct {
		name string
		res  result
	}{{"bare handler (no auth, no storage)", bare}, {"GET /v1/tenants/{id}/settings (secret key)", authed}} {
		fmt.Fprintf(out, "  %-44s %9.0f %7.0f µs %7.0f µs %7d\n", r.name, r.res.rps, us(r.res.p50), us(r.res.p99), r.res.errors)
	}
	fmt.Fprintf(out, "  (the authenticated route also reads the tenant's settings and membership checks from SQLite and logs the call)\n")
	fmt.Fprintf(out, "  database key lookups during %d authenticated requests: %d (the key cache reads a key at most once a minute)\n",
		authed.n, keys.Lookups()-before)
	fmt.Fprintf(out, "\nReproduce: go run ./bench/authbench -clients %d -duration %s\n", clients, dur)
	if authed.errors > 0 {
		return fmt.Errorf("%d authenticated requests failed", authed.errors)
	}
	return nil
}

type result struct {
	n, errors int
	rps       float64
	p50, p99  time.Duration
}

func load(url, key string, clients int, dur time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(dur)
	var errs atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return result{n: len(all), errors: int(errs.Load()), rps: float64(len(all)) / el.Seconds(), p50: pct(all, 50), p99: pct(all, 99)}
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
