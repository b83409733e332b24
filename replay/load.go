package replay

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"parley/recording"
)

// Load is a load test: many sessions at once, from a seeded mix of
// recordings.
type Load struct {
	Recordings []*recording.Recording
	Session    Options
	// Concurrency is how many sessions run at once (default 1).
	Concurrency int
	// Ramp spreads the sessions' starts evenly over this long.
	Ramp time.Duration
	// Count stops after this many sessions (0: no limit); Duration stops
	// starting sessions after this long and cuts the ones running (0: no
	// limit). With neither, each recording is played once.
	Count    int
	Duration time.Duration
	// Seed makes the mix of recordings repeatable.
	Seed uint64
	// Progress, when set, is called after each session.
	Progress func(done, failed int)
}

// Report is a load test's outcome.
type Report struct {
	Started  time.Time
	Elapsed  time.Duration
	Sessions int
	Failed   int
	// Peak is the most sessions that ran at once.
	Peak int
	// Hist holds each metric's histogram (microseconds).
	Hist map[string]*hdrhistogram.Histogram
	// Errors counts failures by kind.
	Errors map[string]int
	// Samples keeps a few failure messages per kind.
	Samples map[string][]string
	// Results are every session's results, in completion order.
	Results []*Result
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// Run runs the load test until Count, Duration or ctx ends it.
func (l *Load) Run(ctx context.Context) *Report {
	n := max(l.Concurrency, 1)
	count := l.Count
	if count == 0 && l.Duration == 0 {
		count = len(l.Recordings)
	}
	rctx := ctx
	if l.Duration > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, l.Duration)
		defer cancel()
	}
	rep := &Report{Started: time.Now(), Hist: map[string]*hdrhistogram.Histogram{}, Errors: map[string]int{}, Samples: map[string][]string{}}
	for _, m := range Metrics {
		rep.Hist[m] = newHist()
	}
	var (
		mu      sync.Mutex
		started atomic.Int64
		running atomic.Int64
		wg      sync.WaitGroup
	)
	record := func(res *Result) {
		mu.Lock()
		defer mu.Unlock()
		rep.Sessions++
		rep.Results = append(rep.Results, res)
		if res.Connect > 0 {
			_ = rep.Hist[MConnect].RecordValue(res.Connect.Microseconds())
		}
		for _, t := range res.Turns {
			for k, d := range t.Times {
				if d > 0 {
					_ = rep.Hist[k].RecordValue(d.Microseconds())
				}
			}
		}
		cut := false
		for _, f := range res.Failures {
			if f.Kind == KindCancelled {
				cut = true
				continue
			}
			rep.Errors[f.Kind]++
			if len(rep.Samples[f.Kind]) < 5 {
				rep.Samples[f.Kind] = append(rep.Samples[f.Kind], f.Message)
			}
		}
		if !res.OK() && !(cut && len(res.Failures) == 1) {
			rep.Failed++
		}
		if l.Progress != nil {
			l.Progress(rep.Sessions, rep.Failed)
		}
	}
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(l.Seed, uint64(w)))
			if l.Ramp > 0 && n > 1 {
				delay := l.Ramp * time.Duration(w) / time.Duration(n)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-rctx.Done():
					t.Stop()
					return
				}
			}
			for {
				i := started.Add(1)
				if (count > 0 && i > int64(count)) || rctx.Err() != nil {
					return
				}
				var rec *recording.Recording
				if l.Count == 0 && l.Duration == 0 {
					rec = l.Recordings[(i-1)%int64(len(l.Recordings))]
				} else {
					rec = l.Recordings[rng.IntN(len(l.Recordings))]
				}
				now := running.Add(1)
				mu.Lock()
				rep.Peak = max(rep.Peak, int(now))
				mu.Unlock()
				res, err := Play(rctx, rec, l.Session)
				running.Add(-1)
				if err != nil {
					res = &Result{Recording: rec.Path, Start: time.Now()}
					res.fail(KindRefused, "%v", err)
				}
				record(res)
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(rep.Started)
	return rep
}
