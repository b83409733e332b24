// Package childio holds the I/O helpers of the benchmarks' child
// processes: reading the first line a child prints (its address) and
// prefixing the lines of its log.
package childio

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// FirstLine captures the first line written to it, delivers it on Lines
// (buffered, one value) and discards the rest.
type FirstLine struct {
	Lines chan string

	mu   sync.Mutex
	buf  []byte
	sent bool
}

// NewFirstLine returns a FirstLine ready to be written to.
func NewFirstLine() *FirstLine { return &FirstLine{Lines: make(chan string, 1)} }

func (f *FirstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sent {
		return len(p), nil
	}
	f.buf = append(f.buf, p...)
	if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
		f.sent = true
		f.Lines <- strings.TrimSpace(string(f.buf[:i]))
		f.buf = nil
	}
	return len(p), nil
}

// PrefixWriter prefixes each line written through it to W.
type PrefixWriter struct {
	W      io.Writer
	Prefix string

	mu  sync.Mutex
	mid bool
}

func (p *PrefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		if !p.mid {
			if _, err := io.WriteString(p.W, p.Prefix); err != nil {
				return 0, err
			}
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.mid = true
			_, err := p.W.Write(b)
			return n, err
		}
		p.mid = false
		if _, err := p.W.Write(b[:i+1]); err != nil {
			return 0, err
		}
		b = b[i+1:]
	}
	return n, nil
}
