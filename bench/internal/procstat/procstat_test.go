package procstat

import (
	"os"
	"testing"
)

func TestSelf(t *testing.T) {
	x := 0
	for i := range 20_000_000 {
		x += i
	}
	_ = x
	cpu, err := ProcCPU(os.Getpid())
	if err != nil || cpu <= 0 || SelfCPU() <= 0 {
		t.Fatalf("CPU %v (%v), self %v", cpu, err, SelfCPU())
	}
	if rss, err := StatusKB(os.Getpid(), "VmRSS:"); err != nil || rss < 1<<20 {
		t.Fatalf("RSS %d (%v)", rss, err)
	}
	if _, err := StatusKB(os.Getpid(), "NoSuchField:"); err == nil {
		t.Errorf("a missing field gave no error")
	}
	if _, err := ProcCPU(-1); err == nil {
		t.Errorf("no error for a missing process")
	}
	if busy, _ := MachineTimes(); busy <= 0 {
		t.Errorf("machine busy time %v", busy)
	}
	if soft, hard := RaiseNofile(); soft == 0 || soft != hard {
		t.Errorf("nofile %d/%d", soft, hard)
	}
}
