package childio

import (
	"bytes"
	"testing"
)

func TestFirstLineAndPrefix(t *testing.T) {
	f := NewFirstLine()
	_, _ = f.Write([]byte("ADDR 127.0.0.1"))
	_, _ = f.Write([]byte(":80 \nmore\n"))
	if got := <-f.Lines; got != "ADDR 127.0.0.1:80" {
		t.Fatalf("first line %q", got)
	}
	var b bytes.Buffer
	p := &PrefixWriter{W: &b, Prefix: "[c] "}
	_, _ = p.Write([]byte("one\ntw"))
	_, _ = p.Write([]byte("o\n"))
	if b.String() != "[c] one\n[c] two\n" {
		t.Fatalf("prefixed %q", b.String())
	}
}
