package main

// A reader of CPU profiles (pprof's profile.proto, gzipped) enough to print
// their top: flat and cumulative time per function, and flat time by kind
// of work. It decodes with protowire so that the bench needs no pprof
// library (`go tool pprof` reads the saved files in full).

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// ProfileTop summarises a CPU profile.
type ProfileTop struct {
	File     string        `json:"file,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Total    time.Duration `json:"total_ns"` // CPU time sampled
	Flat     []FuncTime    `json:"flat"`     // by time in the function itself
	Cum      []FuncTime    `json:"cum"`      // by time in the function and its callees
	Kinds    []FuncTime    `json:"kinds"`    // flat time by kind of work (see kindOf)
}

// FuncTime is one function's (or kind's) CPU time.
type FuncTime struct {
	Name string        `json:"name"`
	Time time.Duration `json:"ns"`
}

// parseProfile reads a CPU profile and keeps the top n entries of each list.
func parseProfile(b []byte, n int) (*ProfileTop, error) {
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if b, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	var (
		strs     []string
		funcs    = map[uint64]int64{}    // function id -> name index
		locs     = map[uint64][]uint64{} // location id -> function ids, innermost first
		samples  [][]uint64              // location ids, leaf first
		values   [][]int64
		duration int64
	)
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 2: // sample
			var ls []uint64
			var vs []int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 1:
					ls = appendPacked(ls, typ, v, x)
				case 2:
					for _, u := range appendPacked(nil, typ, v, x) {
						vs = append(vs, int64(u))
					}
				}
				return nil
			})
			samples, values = append(samples, ls), append(values, vs)
			return err
		case 4: // location
			var id uint64
			var fn []uint64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 1:
					id = x
				case 4: // line
					return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
						if num == 1 {
							fn = append(fn, x)
						}
						return nil
					})
				}
				return nil
			})
			locs[id] = fn
			return err
		case 5: // function
			var id uint64
			var name int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 1:
					id = x
				case 2:
					name = int64(x)
				}
				return nil
			})
			funcs[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(v))
		case 10: // duration_nanos
			duration = int64(x)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the profile: %w", err)
	}
	name := func(fid uint64) string {
		if i, ok := funcs[fid]; ok && i >= 0 && int(i) < len(strs) {
			return strs[i]
		}
		return "?"
	}
	top := &ProfileTop{Duration: time.Duration(duration)}
	flat, cum, kinds := map[string]time.Duration{}, map[string]time.Duration{}, map[string]time.Duration{}
	for i, ls := range samples {
		if len(values[i]) == 0 {
			continue
		}
		d := time.Duration(values[i][len(values[i])-1]) // cpu/nanoseconds is the last type
		top.Total += d
		var stack []string // leaf first
		for _, l := range ls {
			for _, f := range locs[l] {
				stack = append(stack, name(f))
			}
		}
		if len(stack) == 0 {
			continue
		}
		flat[stack[0]] += d
		kinds[kindOf(stack)] += d
		seen := map[string]bool{}
		for _, f := range stack {
			if !seen[f] {
				seen[f] = true
				cum[f] += d
			}
		}
	}
	top.Flat, top.Cum, top.Kinds = topN(flat, n), topN(cum, n), topN(kinds, n)
	return top, nil
}

func topN(m map[string]time.Duration, n int) []FuncTime {
	out := make([]FuncTime, 0, len(m))
	for k, v := range m {
		out = append(out, FuncTime{k, v})
	}
	slices.SortFunc(out, func(a, b FuncTime) int {
		if c := cmp.Compare(b.Time, a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))]
}

// kindOf names the kind of work a sample's leaf does, looking up the stack
// where the leaf alone does not tell (system calls, cgo, allocation).
func kindOf(stack []string) string {
	has := func(subs ...string) bool {
		for _, f := range stack {
			for _, s := range subs {
				if strings.Contains(f, s) {
					return true
				}
			}
		}
		return false
	}
	leaf := stack[0]
	switch {
	case strings.HasPrefix(leaf, "runtime.cgocall") || strings.HasPrefix(leaf, "runtime.asmcgocall") || strings.HasPrefix(leaf, "_cgo"):
		switch {
		case has("Opus", "opus"):
			return "opus codec (cgo)"
		default:
			return "cgo"
		}
	case strings.HasPrefix(leaf, "internal/runtime/syscall") || strings.HasPrefix(leaf, "syscall.") || strings.HasPrefix(leaf, "runtime/internal/syscall"):
		switch {
		case has("epoll"):
			return "syscall: epoll (netpoll)"
		case has("syscall.write", "syscall.Write", "writev", "poll.(*FD).Write"):
			return "syscall: write (sockets, files)"
		case has("syscall.read", "syscall.Read", "poll.(*FD).Read"):
			return "syscall: read (sockets, files)"
		case has("Fsync", "fsync", "Fdatasync"):
			return "syscall: fsync"
		default:
			return "syscall: other"
		}
	case strings.HasPrefix(leaf, "runtime.futex") || strings.HasPrefix(leaf, "runtime.usleep") || strings.HasPrefix(leaf, "runtime.nanotime") ||
		strings.HasPrefix(leaf, "runtime.epollwait") || strings.HasPrefix(leaf, "runtime.netpoll") || strings.HasPrefix(leaf, "runtime.osyield"):
		if has("runtime.gcBgMarkWorker", "runtime.gcStart", "runtime.stopTheWorld") {
			return "runtime: GC"
		}
		return "runtime: scheduler, channels, timers, netpoll"
	case strings.HasPrefix(leaf, "runtime."):
		switch {
		case has("runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.gcAssist", "runtime.markroot", "runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone"):
			return "runtime: GC"
		case has("runtime.mallocgc", "runtime.newobject", "runtime.makeslice", "runtime.growslice", "runtime.makemap", "runtime.concatstring", "runtime.rawstring"):
			return "runtime: allocation"
		case has("runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goready", "runtime.ready", "runtime.mcall", "runtime.gopark",
			"runtime.runqsteal", "runtime.wakep", "runtime.chansend", "runtime.chanrecv", "runtime.selectgo", "runtime.lock", "runtime.unlock",
			"runtime.runtimer", "runtime.checkTimers", "time.", "runtime.netpoll"):
			return "runtime: scheduler, channels, timers, netpoll"
		case has("runtime.memmove", "runtime.memclr"):
			return "runtime: memory copies"
		default:
			return "runtime: other"
		}
	}
	// The leaf's package.
	pkg := leaf
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		if j := strings.Index(pkg[i:], "."); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.Index(pkg, "."); j >= 0 {
		pkg = pkg[:j]
	}
	switch {
	case strings.HasPrefix(pkg, "modernc.org/"):
		return "SQLite (modernc.org)"
	case strings.HasPrefix(pkg, "encoding/json") || strings.HasPrefix(pkg, "encoding/base64") || strings.HasPrefix(pkg, "strconv") ||
		strings.HasPrefix(pkg, "unicode/utf8") || strings.HasPrefix(pkg, "bytes") || strings.HasPrefix(pkg, "strings"):
		return "encoding (JSON, base64, strings)"
	case strings.HasPrefix(pkg, "crypto/") || strings.HasPrefix(pkg, "golang.org/x/crypto"):
		return "crypto"
	case strings.HasPrefix(pkg, "github.com/coder/websocket"):
		return "websocket framing"
	case strings.HasPrefix(pkg, "parley/media"):
		return "parley/media (resampling, VAD, turn detection)"
	}
	return pkg
}

// fields calls fn for each field of the message b; varint fields carry
// their value in x, length-delimited ones their bytes in v.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		default:
			return fmt.Errorf("field %d: wire type %d", num, typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// appendPacked appends a repeated varint field's values, packed or not.
func appendPacked(dst []uint64, typ protowire.Type, v []byte, x uint64) []uint64 {
	if typ == protowire.VarintType {
		return append(dst, x)
	}
	for len(v) > 0 {
		u, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return dst
		}
		dst = append(dst, u)
		v = v[n:]
	}
	return dst
}
