package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestFirstWriteOnce: whatever the interleaving of the writer's stamp and
// the answer's whenWritten, the waiting function runs exactly once, with
// the first stamp's time; never when nothing is written.
func TestFirstWriteOnce(t *testing.T) {
	for i := range 2000 {
		var f firstWrite
		var calls atomic.Int32
		var got atomic.Int64
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); f.stamp(100) }()
		go func() { defer wg.Done(); f.stamp(200) }()
		go func() {
			defer wg.Done()
			f.whenWritten(func(at int64) { calls.Add(1); got.Store(at) })
		}()
		wg.Wait()
		if calls.Load() != 1 || got.Load() != f.at.Load() {
			t.Fatalf("round %d: %d calls with %d, first write %d", i, calls.Load(), got.Load(), f.at.Load())
		}
	}
	var f firstWrite
	ran := false
	f.whenWritten(func(int64) { ran = true })
	if ran {
		t.Fatal("ran without a write")
	}
}
