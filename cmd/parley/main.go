// Command parley is Parley's command-line tool: a terminal chat client for
// the realtime API, a development TLS certificate, storage migrations,
// tenants, users and keys in the store, and the data-rights operations
// (export, deletion, the training export, master key rotation,
// crypto-shredding).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"parley/internal/devcert"
	"parley/storage/backends"
)

const usage = `parley: Parley's command-line tool

Usage:
  parley chat     [-url URL] [-key KEY] [-model AGENT] [-m MESSAGE] [-cacert FILE | -insecure]
                  talk to an agent over the realtime WebSocket API (reads lines from stdin,
                  or sends the -m messages and exits)
  parley record   -o FILE [-name N] [-agent A] [-format pcm|opus] [-modality text|audio]
                  [-lead DUR] [-trail DUR] [-gap DUR] [-barge-in DUR]
                  [-expect-transcript S]... [-expect-reply S]... INPUT...
                  make a session recording (docs/RECORDING.md) from WAV or Ogg Opus speech and
                  text scripts (.txt), one turn per audio file or message
  parley record   -o FILE -tenant ID -conversation ID [-expect] [-lead DUR] [-trail DUR]
                  make one from a stored live session: its typed messages and its logged
                  audio (the tenant needs conversation logging on: privacy.audio_logging);
                  the store and the master key come from the config, as for export
  parley replay   [-url URL] [-key KEY] [-agent A] [-transport websocket|webrtc] [-c N] [-ramp DUR]
                  [-n COUNT | -d DUR] [-speed X]
                  [-seed N] [-timeout DUR] [-json FILE] [-csv FILE] [-html FILE] [-slo EXPR]... [-progress auto|on|off]
                  RECORDING|DIR...   (alias: loadtest)
                  replay recordings against a gateway, many at once, and report latency
                  percentiles and errors; exit 1 when an -slo (p99(turn_to_audio)<1500ms,
                  errors<1%) is missed
  parley dev-cert [-cert FILE] [-key FILE] [-days N] [-force]
                  write a self-signed certificate for localhost (HTTPS and WSS in development)
  parley migrate  [-storage URL]
                  apply the storage migrations (SQLite path or postgres:// URL)
  parley tenant create -id ID -name NAME [-plan PLAN] [-owner EMAIL]
  parley user create -email EMAIL -name NAME [-company C] [-tenant ID -role ROLE] < password
  parley key create -tenant ID [-kind secret|publishable] [-scopes realtime,management,read_only]
                    [-agents A,B -origins https://site] [-name N]
  parley key revoke -tenant ID -id KEY_ID
                  manage tenants, people and keys directly in the store (-storage URL)
  parley export   -tenant ID [-conversation ID | -end-user ID] [-o FILE]
                  export a tenant's data (or one conversation's, or one end user's) as JSON
  parley delete   -tenant ID (-conversation ID | -end-user ID | -all -yes)
                  delete conversations with their turns, audio and usage events
  parley export-training [-o FILE]
                  the redacted training export (JSON Lines) of the tenants that opted in
  parley rotate-master-key
                  rewrap every data key under the current master key (-help: the procedure)
  parley shred    -tenant ID -yes
                  crypto-shred a tenant's data key: all its sealed data becomes unreadable
                  data-rights commands: the store and the master key come from the config
                  (-config FILE, default configs/parley.yaml) and PARLEY_* (-storage URL wins)

Environment: PARLEY_URL, PARLEY_API_KEY, PARLEY_STORAGE_URL, PARLEY_MASTER_KEY provide defaults.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "chat":
		err = chatCmd(ctx, args[1:], stdin, stdout, stderr)
	case "replay", "loadtest":
		err = replayCmd(ctx, args[1:], stdout, stderr)
		if errors.Is(err, errSLO) {
			return 1
		}
	case "record":
		err = recordCmd(ctx, args[1:], stdout, stderr)
	case "dev-cert":
		err = devCertCmd(args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "tenant":
		err = tenantCmd(ctx, args[1:], stdout, stderr)
	case "user":
		err = userCmd(ctx, args[1:], stdin, stdout, stderr)
	case "key":
		err = keyCmd(ctx, args[1:], stdout, stderr)
	case "export":
		err = exportCmd(ctx, args[1:], stdout, stderr)
	case "delete":
		err = deleteCmd(ctx, args[1:], stdout, stderr)
	case "export-training":
		err = exportTrainingCmd(ctx, args[1:], stdout, stderr)
	case "rotate-master-key":
		err = rotateCmd(ctx, args[1:], stdout, stderr)
	case "shred":
		err = shredCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		if ue, ok := err.(usageError); ok {
			fmt.Fprintf(stderr, "parley %s: %s\n", args[0], ue)
			return 2
		}
		fmt.Fprintf(stderr, "parley %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError string

func (e usageError) Error() string { return string(e) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func devCertCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cert := fs.String("cert", "data/dev-cert.pem", "certificate file to write")
	key := fs.String("key", "data/dev-key.pem", "private key file to write (mode 0600)")
	days := fs.Int("days", 365, "validity in days")
	force := fs.Bool("force", false, "replace existing files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *days < 1 || *days > 3650 {
		return usageError("-days must be between 1 and 3650")
	}
	if err := devcert.Write(*cert, *key, time.Duration(*days)*24*time.Hour, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (self-signed for localhost, 127.0.0.1, ::1; %d days)\n\n", *cert, *key, *days)
	fmt.Fprintf(stdout, "serve HTTPS and WSS with:\n  PARLEY_TLS_CERT_FILE=%s PARLEY_TLS_KEY_FILE=%s make run\n", *cert, *key)
	fmt.Fprintf(stdout, "trust it in clients, e.g.:\n  NODE_EXTRA_CA_CERTS=%s node your-client.mjs\n  go run ./cmd/parley chat -url https://localhost:8080 -cacert %s\n", *cert, *cert)
	return nil
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("storage", envOr("PARLEY_STORAGE_URL", "./data/parley.db"), "storage URL: SQLite path or postgres:// URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	store, err := backends.Open(ctx, *url)
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
