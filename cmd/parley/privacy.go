package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"parley/config"
	"parley/privacy"
	"parley/storage"
	"parley/storage/seal"
)

// The privacy commands (docs/PRIVACY.md) work on the configured store
// directly, like the account commands: an operator on the server's host.
// They read the storage URL and the master keys the way parleyd does (see
// privacySetup.load).

// privacySetup holds the flags every privacy command shares.
type privacySetup struct {
	configPath *string
	storageURL *string
}

func addPrivacyFlags(fs *flag.FlagSet) *privacySetup {
	return &privacySetup{
		configPath: fs.String("config", "", "config file (default configs/parley.yaml when it exists)"),
		storageURL: fs.String("storage", "", "storage URL: SQLite path or postgres:// URL (default: the config's storage.url, PARLEY_STORAGE_URL)"),
	}
}

// privacyConfig is the part of Parley's configuration the privacy
// commands use.
type privacyConfig struct {
	StorageURL    string // storage.url
	MasterKey     string // privacy.master_key (PARLEY_MASTER_KEY)
	MasterKeyFile string // privacy.master_key_file
}

// load reads storage.url, privacy.master_key and privacy.master_key_file
// the way parleyd does: the config file over the defaults, then the
// environment (PARLEY_STORAGE_URL, PARLEY_PRIVACY_MASTER_KEY_FILE,
// PARLEY_PRIVACY_MASTER_KEY and its alias PARLEY_MASTER_KEY); -storage wins
// over both. The rest of the file (agents, voice engines...) is not read,
// so these commands work on a host that could not start parleyd.
func (p *privacySetup) load() (privacyConfig, error) {
	def := config.Default()
	c := privacyConfig{StorageURL: def.Storage.URL, MasterKey: def.Privacy.MasterKey, MasterKeyFile: def.Privacy.MasterKeyFile}
	path := *p.configPath
	if path == "" {
		if _, err := os.Stat("configs/parley.yaml"); err == nil {
			path = "configs/parley.yaml"
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		var doc struct {
			Storage struct {
				URL *string `yaml:"url"`
			} `yaml:"storage"`
			Privacy struct {
				MasterKey     *string `yaml:"master_key"`
				MasterKeyFile *string `yaml:"master_key_file"`
			} `yaml:"privacy"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		for _, f := range []struct{ to, from *string }{
			{&c.StorageURL, doc.Storage.URL},
			{&c.MasterKey, doc.Privacy.MasterKey},
			{&c.MasterKeyFile, doc.Privacy.MasterKeyFile},
		} {
			if f.from != nil {
				*f.to = *f.from
			}
		}
	}
	for _, e := range []struct {
		name string
		to   *string
	}{
		{"PARLEY_STORAGE_URL", &c.StorageURL},
		{"PARLEY_PRIVACY_MASTER_KEY_FILE", &c.MasterKeyFile},
		{"PARLEY_PRIVACY_MASTER_KEY", &c.MasterKey},
		{"PARLEY_MASTER_KEY", &c.MasterKey},
	} {
		if v, ok := os.LookupEnv(e.name); ok {
			*e.to = v
		}
	}
	if *p.storageURL != "" {
		c.StorageURL = *p.storageURL
	}
	return c, nil
}

// masterKeys returns the configured master keys: PARLEY_MASTER_KEY (or
// privacy.master_key) when set, else privacy.master_key_file. No key is a
// usage error: the commands that need one cannot do anything without it.
func masterKeys(cfg *privacyConfig) ([]seal.MasterKey, error) {
	keys, err := seal.LoadMasterKeys(cfg.MasterKey, cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		where := "privacy.master_key_file is not set"
		if f := cfg.MasterKeyFile; f != "" {
			where = "the key file " + f + " (privacy.master_key_file) does not exist"
		}
		return nil, usageError("no master key configured: set PARLEY_MASTER_KEY (id:base64key entries) or point privacy.master_key_file at the key file parleyd uses (-config FILE); " + where)
	}
	return keys, nil
}

// open loads the config, the master keys when needKeys, and opens
// the store (and, with keys, a keyring over it). The caller closes the
// store.
func (p *privacySetup) open(ctx context.Context, needKeys bool) (storage.Backend, *seal.Keyring, error) {
	cfg, err := p.load()
	if err != nil {
		return nil, nil, err
	}
	var keys []seal.MasterKey
	if needKeys {
		if keys, err = masterKeys(&cfg); err != nil {
			return nil, nil, err
		}
	}
	st, err := openStore(ctx, cfg.StorageURL)
	if err != nil {
		return nil, nil, err
	}
	if !needKeys {
		return st, nil, nil
	}
	kr, err := seal.NewKeyring(st, keys, seal.Options{})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, kr, nil
}

// checkTenant reports a tenant that does not exist as a clear error.
func checkTenant(ctx context.Context, st storage.Backend, id string) error {
	if _, err := st.GetTenant(ctx, id); err != nil {
		return storageError("tenant "+id, err)
	}
	return nil
}

// parseFlags parses args into fs and refuses positional arguments. A bad
// flag is a usage error (exit 2); the flag package has printed the usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	return nil
}

// exportCmd: parley export -tenant T [-conversation ID | -end-user ID] [-o FILE]
func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup := addPrivacyFlags(fs)
	tenant := fs.String("tenant", "", "tenant id (required)")
	conv := fs.String("conversation", "", "export only this conversation")
	endUser := fs.String("end-user", "", "export only the conversations of this end user (the identifier the business gave; it is pseudonymised before the lookup)")
	out := fs.String("o", "", "write the export to FILE (mode 0600) instead of stdout")
	fs.Usage = func() {
		io.WriteString(fs.Output(), `usage: parley export -tenant ID [-conversation ID | -end-user ID] [-o FILE]

Writes the tenant's data (or one conversation's, or one end user's) as one
portable JSON document (format parley.export.v1): conversations with their
turns (transcripts unsealed) and logged audio (base64), and, for the whole
tenant, the daily usage rollups. Text sealed under a shredded key is null
with "unreadable": true. Needs the master key. The counts go to stderr.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return usageError("-tenant is required")
	}
	if err := checkEndUser(*endUser); err != nil {
		return err
	}
	if *conv != "" && *endUser != "" {
		return usageError("-conversation and -end-user cannot be used together")
	}
	st, kr, err := setup.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkTenant(ctx, st, *tenant); err != nil {
		return err
	}
	f := storage.ConversationFilter{ID: *conv}
	scope := "tenant " + *tenant
	if *conv != "" {
		if _, err := st.GetConversation(ctx, *tenant, *conv); err != nil {
			return storageError("conversation "+*conv+" of tenant "+*tenant, err)
		}
		scope = "conversation " + *conv + " of " + scope
	}
	if *endUser != "" {
		if f.EndUser, err = kr.Pseudonym(ctx, *tenant, *endUser); err != nil {
			return fmt.Errorf("pseudonymising the end user: %w", err)
		}
		scope = "end user " + f.EndUser + " of " + scope
	}
	var stats privacy.ExportStats
	err = writeOutput(*out, stdout, func(w io.Writer) error {
		var err error
		stats, err = privacy.Export(ctx, w, st, kr, *tenant, f, time.Now().UTC())
		return err
	})
	dest := "stdout"
	if *out != "" {
		dest = *out
	}
	if err != nil {
		return fmt.Errorf("export of %s: %w", scope, err)
	}
	fmt.Fprintf(stderr, "exported %s to %s: %d conversations, %d turns, %d audio clips\n",
		scope, dest, stats.Conversations, stats.Turns, stats.Audio)
	return nil
}

// writeOutput runs write on stdout, or (path set) on a new file that
// replaces path only once write succeeded: a failed export leaves no
// partial file behind (and an existing file as it was).
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" {
		return write(stdout)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// CreateTemp creates the file with mode 0600: exports hold personal data.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// deleteCmd: parley delete -tenant T (-conversation ID | -end-user ID | -all) [-yes]
func deleteCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup := addPrivacyFlags(fs)
	tenant := fs.String("tenant", "", "tenant id (required)")
	conv := fs.String("conversation", "", "delete this conversation")
	endUser := fs.String("end-user", "", "delete the conversations of this end user (the identifier the business gave; needs the master key to pseudonymise it)")
	all := fs.Bool("all", false, "delete every conversation of the tenant (with -yes)")
	yes := fs.Bool("yes", false, "confirm -all")
	fs.Usage = func() {
		io.WriteString(fs.Output(), `usage: parley delete -tenant ID (-conversation ID | -end-user ID | -all -yes)

Deletes conversations with their turns, logged audio and usage events, in
one transaction, and prints what it deleted as JSON. The daily usage
rollups stay: they hold no conversation. Deleting nothing is not an error.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return usageError("-tenant is required")
	}
	n := 0
	if err := checkEndUser(*endUser); err != nil {
		return err
	}
	for _, set := range []bool{*conv != "", *endUser != "", *all} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return usageError("say what to delete: -conversation ID, -end-user ID or -all")
	case n > 1:
		return usageError("use only one of -conversation, -end-user and -all")
	case *all && !*yes:
		return usageError("-all deletes every conversation of tenant " + *tenant + " with its transcripts, audio and usage events: add -yes to confirm")
	}
	st, kr, err := setup.open(ctx, *endUser != "")
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkTenant(ctx, st, *tenant); err != nil {
		return err
	}
	f := storage.ConversationFilter{ID: *conv}
	if *endUser != "" {
		if f.EndUser, err = kr.Pseudonym(ctx, *tenant, *endUser); err != nil {
			return fmt.Errorf("pseudonymising the end user: %w", err)
		}
	}
	d, err := st.DeleteConversations(ctx, *tenant, f)
	if err != nil {
		return storageError("delete", err)
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(struct {
		Deleted storage.Deleted `json:"deleted"`
	}{d})
}

// exportTrainingCmd: parley export-training [-o FILE]
func exportTrainingCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export-training", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup := addPrivacyFlags(fs)
	out := fs.String("o", "", "write the export to FILE (mode 0600) instead of stdout")
	fs.Usage = func() {
		io.WriteString(fs.Output(), `usage: parley export-training [-o FILE]

Writes the training export of the model improvement program as JSON Lines,
one conversation per line, from the active tenants that opted in
(TrainingOptIn in their privacy policy) and only them: the opt-in is read
at each export, so a revocation applies to the next one. Every transcript
is redacted (emails, phone numbers, cards, IBANs) whatever the tenant's own
settings; tenants and conversations appear as pseudonyms, end users not at
all, and no time finer than the day. Needs the master key.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, kr, err := setup.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	var stats privacy.TrainingStats
	err = writeOutput(*out, stdout, func(w io.Writer) error {
		var err error
		stats, err = privacy.ExportTraining(ctx, w, st, kr, time.Now().UTC())
		return err
	})
	if err != nil {
		return fmt.Errorf("training export: %w", err)
	}
	dest := "stdout"
	if *out != "" {
		dest = *out
	}
	fmt.Fprintf(stderr, "wrote %d conversations (%d turns) of %d opted-in tenants to %s\n",
		stats.Conversations, stats.Turns, stats.Tenants, dest)
	return nil
}

// rotateCmd: parley rotate-master-key
func rotateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rotate-master-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup := addPrivacyFlags(fs)
	fs.Usage = func() {
		io.WriteString(fs.Output(), `usage: parley rotate-master-key

Rewraps every tenant's data key under the current master key (the first
one configured) and prints how many it rewrapped. The data itself is not
re-encrypted: only the data keys are. To rotate the master key:

  1. Generate a key:  echo "mk-$(date +%Y%m%d):$(head -c 32 /dev/urandom | base64)"
  2. Put it FIRST in PARLEY_MASTER_KEY (comma-separated) or in the key file
     (privacy.master_key_file, one per line), keeping the old key after it.
  3. Restart the parleyd nodes one at a time: each then wraps new data keys
     under the new key and still unwraps the old ones.
  4. Run this command (with the same keys configured). It can be run again:
     keys already under the new master key are skipped.
  5. Remove the old key from every node's configuration and restart them.
     Backups taken before the rotation stay readable only with the old key:
     keep it (apart from the backups) as long as those backups, or destroy
     it to make them unreadable.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, kr, err := setup.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := kr.Rotate(ctx)
	fmt.Fprintf(stdout, "rewrapped %d data keys under master key %s\n", n, kr.CurrentMasterKeyID())
	if err != nil {
		return fmt.Errorf("some data keys were not rewrapped (run it again once fixed): %w", err)
	}
	return nil
}

// shredCmd: parley shred -tenant T -yes
func shredCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shred", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup := addPrivacyFlags(fs)
	tenant := fs.String("tenant", "", "tenant id (required)")
	yes := fs.Bool("yes", false, "confirm: this cannot be undone")
	fs.Usage = func() {
		io.WriteString(fs.Output(), `usage: parley shred -tenant ID -yes

Crypto-shreds a tenant: deletes its data key, so everything sealed under it
(transcripts, logged audio, agent settings) becomes unreadable at once,
in the database and in its backups alike (in backups, once no copy of the
master key that wrapped the data key is left: rotate it). Running nodes stop
using their cached copy of the key within their key cache TTL (a minute by
default). The rows stay until they expire or are deleted; what the tenant
seals afterwards gets a new data key (disable or delete the tenant to stop
that). It cannot be undone. It does not need the master key.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return usageError("-tenant is required")
	}
	if !*yes {
		return usageError("shredding makes every transcript, audio clip and agent setting of tenant " + *tenant + " unreadable, for good: add -yes to confirm")
	}
	st, _, err := setup.open(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkTenant(ctx, st, *tenant); err != nil {
		return err
	}
	err = st.DeleteDataKey(ctx, *tenant)
	if errors.Is(err, storage.ErrNotFound) {
		fmt.Fprintf(stdout, "tenant %s has no data key (it was shredded before, or never sealed anything): nothing to shred\n", *tenant)
		return nil
	}
	if err != nil {
		return storageError("shred", err)
	}
	fmt.Fprintf(stdout, "shredded the data key of tenant %s: its sealed data is unreadable\n", *tenant)
	return nil
}

// checkEndUser applies the gateway's rule for end-user identifiers (at
// most 256 bytes of UTF-8, no control characters), so an identifier with
// a stray newline is an error rather than a lookup that finds nothing.
func checkEndUser(id string) error {
	if id == "" {
		return nil
	}
	if len(id) > 256 || !utf8.ValidString(id) {
		return usageError("-end-user must be valid UTF-8 of at most 256 bytes")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return usageError("-end-user must not contain control characters (a stray newline?)")
		}
	}
	return nil
}
