package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"parley/agent"
	"parley/gateway"
	"parley/internal/devcert"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

const key = "sk_cli_test_0123456789abcdef"

type echoAgent struct{}

func (echoAgent) Respond(ctx context.Context, req *agent.Request, emit func(string) error) (agent.Usage, error) {
	last := req.History[len(req.History)-1].Text
	for _, w := range []string{"You ", "said: ", last} {
		if err := emit(w); err != nil {
			return agent.Usage{}, err
		}
	}
	return agent.Usage{InputTokens: 1, OutputTokens: 3}, nil
}

func gatewayServer(t *testing.T, withTLS bool) (*httptest.Server, string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	auth, _, err := gateway.BootstrapKeys(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := seal.NewMasterKey("bench")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(st, []seal.MasterKey{mk}, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{
		Sealer: kr,
		Agents: map[string]*agent.Agent{"assistant": {ID: "assistant", Greeting: "Hello, human.", Responder: echoAgent{}}},
		Store:  st, Auth: auth, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw.Handler())
	ca := ""
	if withTLS {
		dir := t.TempDir()
		ca = filepath.Join(dir, "cert.pem")
		keyFile := filepath.Join(dir, "key.pem")
		if err := devcert.Write(ca, keyFile, time.Hour, false); err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(ca, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		_ = gw.Close()
		srv.Close()
		_ = st.Close()
	})
	return srv, ca
}

func TestChatOneShot(t *testing.T) {
	srv, _ := gatewayServer(t, false)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"chat", "-url", srv.URL, "-key", key, "-m", "first", "-m", "second"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	for _, want := range []string{"agent> Hello, human.", "you> first", "agent> You said: first", "agent> You said: second"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestChatStdinOverTLS(t *testing.T) {
	srv, ca := gatewayServer(t, true)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"chat", "-url", srv.URL, "-key", key, "-cacert", ca}, strings.NewReader("hi there\n\nbye\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "You said: hi there") || !strings.Contains(out.String(), "You said: bye") {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	// Without trusting the certificate the connection is refused clearly.
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"chat", "-url", srv.URL, "-key", key, "-m", "x"}, nil, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "certificate") {
		t.Fatalf("untrusted cert: exit %d %s", code, errb.String())
	}
}

func TestChatErrors(t *testing.T) {
	srv, _ := gatewayServer(t, false)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"chat", "-url", srv.URL, "-key", "sk_wrong_key_0123456789", "-m", "x"}, 1, "401"},
		{[]string{"chat", "-url", srv.URL, "-key", key, "-model", "ghost", "-m", "x"}, 1, "model_not_found"},
		{[]string{"chat", "-url", "ftp://x", "-key", key}, 2, "scheme"},
		{[]string{"chat", "-url", srv.URL}, 2, "API key is required"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{}, 2, "Usage"},
		{[]string{"dev-cert", "-days", "0"}, 2, "-days"},
	} {
		var out, errb bytes.Buffer
		t.Setenv("PARLEY_API_KEY", "")
		code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.want) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", tt.args, code, out.String(), errb.String(), tt.code, tt.want)
		}
	}
}

func TestDevCertAndMigrate(t *testing.T) {
	dir := t.TempDir()
	cert, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"dev-cert", "-cert", cert, "-key", keyFile}, nil, &out, &errb); code != 0 {
		t.Fatalf("dev-cert: %d %s", code, errb.String())
	}
	if _, err := tls.LoadX509KeyPair(cert, keyFile); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"dev-cert", "-cert", cert, "-key", keyFile}, nil, &out, &errb); code != 1 {
		t.Fatalf("overwrote existing certificate: %d", code)
	}
	db := filepath.Join(dir, "m.db")
	if code := run(context.Background(), []string{"migrate", "-storage", db}, nil, &out, &errb); code != 0 {
		t.Fatalf("migrate: %d %s", code, errb.String())
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"migrate", "-storage", "mysql://x"}, nil, &out, &errb); code != 1 {
		t.Fatalf("bad storage url: %d", code)
	}
}
