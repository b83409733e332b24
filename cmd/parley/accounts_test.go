package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"parley/access"
	"parley/gateway"
	"parley/storage"
	"parley/storage/sqlite"
)

func TestAccountCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "a.db")
	cli := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(args[:1:1], append([]string{args[1], "-storage", db}, args[2:]...)...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, e := cli("", "tenant", "create", "-id", "acme", "-name", "Acme Inc."); code != 0 {
		t.Fatalf("tenant create: %d %s", code, e)
	}
	if code, _, e := cli("", "tenant", "create", "-id", "acme", "-name", "Again"); code != 1 || !strings.Contains(e, "already exists") {
		t.Fatalf("duplicate tenant: %d %s", code, e)
	}
	if code, _, e := cli("", "tenant", "create", "-id", "Bad Id", "-name", "x"); code != 2 {
		t.Fatalf("bad tenant id: %d %s", code, e)
	}
	if code, _, e := cli("correct horse battery\n", "user", "create", "-email", "Ada@Example.com", "-name", "Ada", "-tenant", "acme", "-role", "owner"); code != 0 {
		t.Fatalf("user create: %d %s", code, e)
	}
	if code, _, e := cli("short\n", "user", "create", "-email", "bob@example.com", "-name", "Bob"); code != 2 || !strings.Contains(e, "at least") {
		t.Fatalf("weak password: %d %s", code, e)
	}
	code, out, e := cli("", "key", "create", "-tenant", "acme", "-kind", "publishable", "-agents", "assistant", "-origins", "https://acme.example")
	if code != 0 {
		t.Fatalf("key create: %d %s", code, e)
	}
	pk := regexp.MustCompile(`pk_[0-9A-Za-z]{43}`).FindString(out)
	keyID := regexp.MustCompile(`key_[0-9A-Za-z]+`).FindString(out)
	if pk == "" || keyID == "" {
		t.Fatalf("key create printed %q", out)
	}
	if code, _, e := cli("", "key", "create", "-tenant", "acme", "-kind", "secret", "-scopes", "everything"); code != 1 || !strings.Contains(e, "scope") {
		t.Fatalf("bad scope: %d %s", code, e)
	}

	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUserByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := access.VerifyPassword(string(u.PasswordHash), "correct horse battery"); !ok || err != nil {
		t.Fatalf("stored password does not verify: %v", err)
	}
	if m, err := st.GetMembership(context.Background(), "acme", u.ID); err != nil || m.Role != access.RoleOwner {
		t.Fatalf("membership %+v %v", m, err)
	}
	keys, err := st.KeysByPrefix(context.Background(), pk[:gateway.KeyPrefixLen])
	if err != nil || len(keys) != 1 || keys[0].Kind != storage.KeyPublishable || keys[0].Origins[0] != "https://acme.example" ||
		!bytes.Equal(keys[0].Hash, gateway.HashKey(pk)) {
		t.Fatalf("stored key %+v %v", keys, err)
	}
	if code, _, e := cli("", "key", "revoke", "-tenant", "acme", "-id", keyID); code != 0 {
		t.Fatalf("revoke: %d %s", code, e)
	}
	if keys, _ := st.KeysByPrefix(context.Background(), pk[:gateway.KeyPrefixLen]); len(keys) != 0 {
		t.Fatal("revoked key still found")
	}
	if code, _, e := cli("", "key", "revoke", "-tenant", "other", "-id", keyID); code != 1 || !strings.Contains(e, "not found") {
		t.Fatalf("revoke in another tenant: %d %s", code, e)
	}
}
