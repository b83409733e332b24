package rtc

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/goleak"
)

// TestMeasureInterceptors compares interceptor sets on a connected call
// carrying audio both ways (the client sends 50 packets/s, the edge plays
// 50 packets/s) for 2 s: goroutines of the process while connected (client
// and edge; the client is the same in every run, so differences are the
// edge's), allocations and CPU per second. Run with RTC_MEASURE=1 -v.
func TestMeasureInterceptors(t *testing.T) {
	if os.Getenv("RTC_MEASURE") == "" {
		t.Skip("set RTC_MEASURE=1 to measure")
	}
	variants := []struct {
		name  string
		build func(*webrtc.MediaEngine, pionLoggerFactory) (*interceptor.Registry, error)
	}{
		{"none", func(*webrtc.MediaEngine, pionLoggerFactory) (*interceptor.Registry, error) {
			return &interceptor.Registry{}, nil
		}},
		{"reports (the edge's)", nil},
		{"pion defaults", func(me *webrtc.MediaEngine, _ pionLoggerFactory) (*interceptor.Registry, error) {
			ir := &interceptor.Registry{}
			return ir, webrtc.RegisterDefaultInterceptors(me, ir)
		}},
	}
	const seconds = 2
	packets := tone(t, 50*seconds)
	for _, v := range variants {
		for round := 0; round < 2; round++ { // the first round warms up pools and caches
			base := runtime.NumGoroutine()
			e := newTestEdge(t, func(c *Config) { c.interceptors = v.build })
			cn := connect(t, e, clientOptions{}, CallOptions{})
			time.Sleep(200 * time.Millisecond) // let the connection settle
			goroutines := runtime.NumGoroutine() - base

			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := cpuTime()
			start := time.Now()
			for _, p := range packets {
				cn.call.Play("m", p)
			}
			ticker := time.NewTicker(FrameDuration)
			for _, p := range packets {
				_ = cn.client.mic.WriteSample(pionmedia.Sample{Data: p, Duration: FrameDuration})
				<-ticker.C
			}
			ticker.Stop()
			elapsed := time.Since(start).Seconds()
			cpu := (cpuTime() - cpu0).Seconds()
			runtime.ReadMemStats(&m1)
			if round == 1 {
				t.Logf("%-22s goroutines %3d (pair)  %6.0f allocs/s  %6.1f KiB/s  CPU %4.1f%% (pair, both directions, incl. Opus decode)",
					v.name, goroutines, float64(m1.Mallocs-m0.Mallocs)/elapsed,
					float64(m1.TotalAlloc-m0.TotalAlloc)/1024/elapsed, 100*cpu/elapsed)
			}
			cn.close(t)
			_ = e.Close()
		}
	}
	goleak.VerifyNone(t)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
