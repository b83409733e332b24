// Package procstat reads what the benchmarks measure of processes and of
// the machine on Linux: a process's CPU time and memory from /proc, the
// benchmark's own CPU time, the machine's busy and interrupt time, and the
// open-files limit.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const clkTck = 100 // USER_HZ on Linux

// ProcCPU returns a process's CPU time so far: utime + stime of
// /proc/PID/stat (clock ticks of 10 ms).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: the fields start
	// after the last ')'. Then: state(3) ... utime(14) stime(15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// StatusKB returns a "kB" field of /proc/PID/status in bytes.
func StatusKB(pid int, field string) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// SelfCPU returns this process's own CPU time (a benchmark's clients).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineTimes returns the busy CPU time of the whole machine from
// /proc/stat: busy is user, nice, system and steal; irq is interrupt and
// softirq time, which the kernel may charge to no process (loopback TCP
// is processed there). Zeros when unavailable.
func MachineTimes() (busy, irq time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var nb, ni uint64
	// user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user.
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		switch i {
		case 0, 1, 2, 7:
			nb += n
		case 5, 6:
			ni += n
		}
	}
	return time.Duration(nb) * time.Second / clkTck, time.Duration(ni) * time.Second / clkTck
}

// RaiseNofile lifts the RLIMIT_NOFILE soft limit to the hard limit (Go
// does so itself at start-up; kept so a change there does not silently cap
// the run).
func RaiseNofile() (soft, hard uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur, lim.Max
}
