package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"parley/access"
	"parley/gateway"
	"parley/storage"
	"parley/storage/backends"
)

// The account commands work on the configured store directly (an operator
// on the server's host), not through the management API.

var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func openStore(ctx context.Context, url string) (storage.Backend, error) {
	st, err := backends.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return st, nil
}

// storageError turns a storage error into a message for the operator.
func storageError(what string, err error) error {
	switch {
	case errors.Is(err, storage.ErrConflict):
		return fmt.Errorf("%s: it already exists", what)
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%s: not found", what)
	case errors.Is(err, storage.ErrInvalid):
		return fmt.Errorf("%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tenantCmd: parley tenant create -id ID -name NAME [-plan PLAN] [-owner EMAIL]
func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError("usage: parley tenant create -id ID -name NAME [-plan free|team|enterprise] [-owner EMAIL]")
	}
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("storage", envOr("PARLEY_STORAGE_URL", "./data/parley.db"), "storage URL")
	id := fs.String("id", "", "tenant id (lowercase letters, digits, - and _)")
	name := fs.String("name", "", "display name")
	plan := fs.String("plan", storage.PlanFree, "plan")
	owner := fs.String("owner", "", "email of an existing user to make the owner")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if !tenantIDPattern.MatchString(*id) {
		return usageError("-id is required: lowercase letters, digits, - and _, up to 64")
	}
	if strings.TrimSpace(*name) == "" {
		return usageError("-name is required")
	}
	st, err := openStore(ctx, *url)
	if err != nil {
		return err
	}
	defer st.Close()
	ownerID := ""
	if *owner != "" {
		u, err := st.GetUserByEmail(ctx, *owner)
		if err != nil {
			return storageError("owner "+*owner, err)
		}
		ownerID = u.ID
	}
	t := &storage.Tenant{ID: *id, Name: strings.TrimSpace(*name), Plan: *plan, CreatedAt: time.Now().UTC()}
	if err := st.CreateTenant(ctx, t, ownerID); err != nil {
		return storageError("tenant "+*id, err)
	}
	fmt.Fprintf(stdout, "created tenant %s (%s, plan %s)\n", t.ID, t.Name, t.Plan)
	return nil
}

// userCmd: parley user create -email EMAIL -name NAME [-tenant ID -role ROLE]
// reads the password from stdin (one line), never from a flag.
func userCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError("usage: parley user create -email EMAIL -name NAME [-company C] [-tenant ID -role owner|admin|member|viewer] < password")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("storage", envOr("PARLEY_STORAGE_URL", "./data/parley.db"), "storage URL")
	email := fs.String("email", "", "sign-in email")
	name := fs.String("name", "", "full name")
	company := fs.String("company", "", "company")
	tenant := fs.String("tenant", "", "tenant to add the user to")
	role := fs.String("role", access.RoleMember, "role in -tenant")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if !strings.Contains(*email, "@") || strings.TrimSpace(*name) == "" {
		return usageError("-email and -name are required")
	}
	if *tenant != "" && !access.ValidRole(*role) {
		return usageError("-role must be owner, admin, member or viewer")
	}
	pw, err := readLine(stdin)
	if err != nil {
		return usageError("the password is read from stdin (one line): " + err.Error())
	}
	if err := access.CheckPassword(pw); err != nil {
		return usageError(err.Error())
	}
	hash, err := access.HashPassword(pw)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, *url)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	u := &storage.User{ID: "user_" + gateway.NewSecretKey()[3:19], Email: *email, Name: strings.TrimSpace(*name), Company: *company,
		PasswordHash: []byte(hash), CreatedAt: now, PasswordChangedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		return storageError("user "+*email, err)
	}
	if *tenant != "" {
		if err := st.AddMember(ctx, &storage.Membership{TenantID: *tenant, UserID: u.ID, Role: *role, CreatedAt: now}); err != nil {
			return storageError("membership in "+*tenant, err)
		}
	}
	fmt.Fprintf(stdout, "created user %s (%s)", u.ID, u.Email)
	if *tenant != "" {
		fmt.Fprintf(stdout, ", %s of %s", *role, *tenant)
	}
	fmt.Fprintln(stdout)
	return nil
}

func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() <= access.MaxPasswordLen*4 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			b.WriteByte(buf[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimRight(b.String(), "\r"), nil
}

// keyCmd: parley key create -tenant ID [-kind secret|publishable] [-scopes …]
// [-agents …] [-origins …] [-name N]; parley key revoke -tenant ID -id KEY_ID
func keyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "revoke") {
		return usageError("usage: parley key create -tenant ID [-kind secret|publishable] [-scopes realtime,management] [-agents A,B -origins https://x] [-name N] | parley key revoke -tenant ID -id KEY_ID")
	}
	fs := flag.NewFlagSet("key "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("storage", envOr("PARLEY_STORAGE_URL", "./data/parley.db"), "storage URL")
	tenant := fs.String("tenant", storage.DefaultTenant, "tenant id")
	kind := fs.String("kind", storage.KeySecret, "secret or publishable")
	scopes := fs.String("scopes", storage.ScopeRealtime, "secret key scopes: realtime, management, read_only (comma-separated)")
	agents := fs.String("agents", "", "publishable key: agents it may mint sessions for (comma-separated)")
	origins := fs.String("origins", "", "publishable key: allowed origins, e.g. https://shop.example.com (comma-separated)")
	name := fs.String("name", "", "a label")
	id := fs.String("id", "", "key id (revoke)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	st, err := openStore(ctx, *url)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	if args[0] == "revoke" {
		if *id == "" {
			return usageError("-id is required")
		}
		if err := st.RevokeKey(ctx, *tenant, *id, now); err != nil {
			return storageError("key "+*id, err)
		}
		fmt.Fprintf(stdout, "revoked key %s of %s (every node stops accepting it within seconds)\n", *id, *tenant)
		return nil
	}
	secret := gateway.NewSecretKey()
	k := &storage.Key{ID: "key_" + secret[3:19], TenantID: *tenant, Kind: *kind, Name: *name, CreatedAt: now}
	switch *kind {
	case storage.KeySecret:
		k.Scopes = splitList(*scopes)
	case storage.KeyPublishable:
		secret = "pk_" + secret[3:]
		k.AgentIDs, k.Origins = splitList(*agents), splitList(*origins)
	default:
		return usageError("-kind must be secret or publishable")
	}
	k.Prefix, k.Hash = secret[:gateway.KeyPrefixLen], gateway.HashKey(secret)
	if err := st.CreateKey(ctx, k); err != nil {
		return storageError("key", err)
	}
	fmt.Fprintf(stdout, "created %s key %s for %s; the key (shown once, only its hash is stored):\n\n    %s\n\n", k.Kind, k.ID, k.TenantID, secret)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
