package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"parley/realtime"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// chatCmd is a small realtime client: it is the runnable example of the
// protocol (session.created, conversation.item.create, response.create,
// streamed response.output_text.delta, response.done).
func chatCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("PARLEY_URL", "http://localhost:8080"), "gateway base URL (http, https, ws or wss)")
	key := fs.String("key", os.Getenv("PARLEY_API_KEY"), "API key (default $PARLEY_API_KEY)")
	model := fs.String("model", "assistant", "agent id")
	cacert := fs.String("cacert", "", "PEM file of a CA to trust (e.g. the dev certificate)")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification")
	timeout := fs.Duration("timeout", 60*time.Second, "time to wait for each answer")
	var messages multiFlag
	fs.Var(&messages, "m", "message to send (repeatable); without -m, lines are read from stdin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *key == "" {
		return usageError("an API key is required: -key KEY or PARLEY_API_KEY")
	}
	wsURL, err := realtimeURL(*base, *model)
	if err != nil {
		return usageError(err.Error())
	}
	httpClient, err := tlsClient(*cacert, *insecure)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPClient: httpClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + *key}},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("connect %s: %s: %s", wsURL, resp.Status, strings.TrimSpace(string(body)))
		}
		return fmt.Errorf("connect %s: %w", wsURL, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)

	// One goroutine reads and prints every event; this one sends. The
	// reader reports each response.done (or its own end) on done.
	stdout = &lockedWriter{w: stdout} // the reader and this goroutine both print
	c := &chatClient{conn: conn, out: stdout, done: make(chan error, 1)}
	rctx, stopReader := context.WithCancel(context.Background())
	readerExited := make(chan struct{})
	go func() { defer close(readerExited); c.readLoop(rctx) }()
	defer func() { stopReader(); _ = conn.CloseNow(); <-readerExited }()

	// Wait for session.created before sending anything.
	select {
	case err := <-c.done:
		if err != nil {
			return err
		}
	case <-time.After(*timeout):
		return fmt.Errorf("no session.created within %s", *timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	ask := func(text string) error {
		item, _ := json.Marshal(map[string]any{"type": "conversation.item.create", "item": map[string]any{
			"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": text}}}})
		if err := c.write(ctx, item); err != nil {
			return err
		}
		if err := c.write(ctx, []byte(`{"type":"response.create"}`)); err != nil {
			return err
		}
		select {
		case err := <-c.done:
			return err
		case <-time.After(*timeout):
			return fmt.Errorf("no answer within %s", *timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(messages) > 0 {
		for _, m := range messages {
			fmt.Fprintf(stdout, "you> %s\n", m)
			if err := ask(m); err != nil {
				return err
			}
		}
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for {
			if !sc.Scan() {
				break
			}
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			if err := ask(line); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	return conn.Close(websocket.StatusNormalClosure, "bye")
}

func realtimeURL(base, model string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("-url %q is not a URL like http://localhost:8080", base)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("-url scheme %q: use http, https, ws or wss", u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/v1/realtime") {
		u.Path = strings.TrimSuffix(u.Path, "/v1") + "/v1/realtime"
	}
	u.RawQuery = url.Values{"model": {model}}.Encode()
	return u.String(), nil
}

func tlsClient(cacert string, insecure bool) (*http.Client, error) {
	if cacert == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // opt-in flag for development
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cacert)
		}
		cfg.RootCAs = pool
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

type chatClient struct {
	conn *websocket.Conn
	out  io.Writer
	done chan error // one value per response.done, or the reader's end
}

func (c *chatClient) write(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

type serverEvent struct {
	Type     string          `json:"type"`
	Delta    string          `json:"delta"`
	Item     *realtime.Item  `json:"item"`
	Error    *realtime.Error `json:"error"`
	Response *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"response"`
}

// readLoop prints the conversation as it streams: the greeting, each
// answer's deltas, errors and unusual response endings.
func (c *chatClient) readLoop(ctx context.Context) {
	inAnswer := false
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			if s := websocket.CloseStatus(err); s != -1 {
				err = fmt.Errorf("the gateway closed the session (%d)", s)
			}
			c.report(ctx, err)
			return
		}
		var ev serverEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			c.report(ctx, fmt.Errorf("invalid event from the gateway: %w", err))
			return
		}
		switch ev.Type {
		case realtime.TypeSessionCreated:
			fmt.Fprintln(c.out, "(connected; type a message and press Enter)")
			if !c.report(ctx, nil) {
				return
			}
		case realtime.TypeItemDone:
			// An assistant item outside a response is the agent's greeting.
			if !inAnswer && ev.Item != nil && ev.Item.Role == "assistant" {
				fmt.Fprintf(c.out, "agent> %s\n", ev.Item.Text())
			}
		case realtime.TypeResponseCreated:
			inAnswer = true
		case realtime.TypeOutputItemAdded:
			fmt.Fprint(c.out, "agent> ")
		case realtime.TypeOutputTextDelta:
			fmt.Fprint(c.out, ev.Delta)
		case realtime.TypeOutputTextDone:
			fmt.Fprintln(c.out)
		case realtime.TypeError:
			fmt.Fprintf(c.out, "[error %s: %s]\n", ev.Error.Code, ev.Error.Message)
		case realtime.TypeResponseDone:
			inAnswer = false
			if ev.Response != nil && ev.Response.Status != "completed" {
				fmt.Fprintf(c.out, "[response %s]\n", ev.Response.Status)
			}
			if !c.report(ctx, nil) {
				return
			}
		}
	}
}

// report hands a result to the sender, giving up when ctx ends.
func (c *chatClient) report(ctx context.Context, err error) bool {
	select {
	case c.done <- err:
		return true
	case <-ctx.Done():
		return false
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
