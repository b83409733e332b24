package seal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/storage"
)

var ctx = context.Background()

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustMaster(t testing.TB, id string) MasterKey {
	t.Helper()
	m, err := NewMasterKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustKeyring(t testing.TB, st KeyStore, opt Options, masters ...MasterKey) *Keyring {
	t.Helper()
	k, err := NewKeyring(st, masters, opt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t testing.TB, k *Keyring, tenant string, pt, aad []byte) []byte {
	t.Helper()
	s, err := k.Seal(ctx, tenant, pt, aad)
	if err != nil {
		t.Fatalf("Seal(%s): %v", tenant, err)
	}
	return s
}

func mustOpen(t testing.TB, k *Keyring, tenant string, sealed, aad, want []byte) {
	t.Helper()
	got, err := k.Open(ctx, tenant, sealed, aad)
	if err != nil {
		t.Fatalf("Open(%s): %v", tenant, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Open(%s) = %q, want %q", tenant, got, want)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

// keyMaterial lists the forms of key k an error must not contain.
func keyMaterial(k []byte) []string {
	var s []string
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		e := enc.EncodeToString(k)
		s = append(s, e, e[:12], e[len(e)-12:])
	}
	return append(s, string(k), fmt.Sprintf("%x", k)[:16])
}

func TestParseMasterKeys(t *testing.T) {
	k1 := bytes.Repeat([]byte{0xfb}, 32) // "+/" in std base64, "-_" in url
	k2 := []byte("0123456789abcdef0123456789ABCDEF")
	b1 := base64.StdEncoding.EncodeToString(k1)
	b2 := base64.RawURLEncoding.EncodeToString(k2)
	b16 := base64.StdEncoding.EncodeToString(k1[:16])
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := []struct {
		name, spec string
		ids        []string
	}{
		{"one", "mk-1:" + b1, []string{"mk-1"}},
		{"commas", "new:" + b1 + ",old:" + b2, []string{"new", "old"}},
		{"spaces", "  new : " + b1 + " , old:" + b2 + " ,", []string{"new", "old"}},
		{"lines", "# Parley master keys\n\nnew:" + b1 + "\n  # old one\nold:" + b2 + "\n", []string{"new", "old"}},
		{"crlf", "new:" + b1 + "\r\nold:" + b2 + "\r\n", []string{"new", "old"}},
		{"raw url", "k_1:" + base64.RawURLEncoding.EncodeToString(k1), []string{"k_1"}},
		{"raw std", "K:" + base64.RawStdEncoding.EncodeToString(k1), []string{"K"}},
		{"32-char id", strings.Repeat("a", 32) + ":" + b1, []string{strings.Repeat("a", 32)}},
	}
	for _, tc := range good {
		t.Run("good/"+tc.name, func(t *testing.T) {
			keys, err := ParseMasterKeys(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
				if len(k.Key) != 32 {
					t.Fatalf("key %s is %d bytes", k.ID, len(k.Key))
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
				t.Fatalf("ids %v, want %v", ids, tc.ids)
			}
			if !bytes.Equal(keys[0].Key, k1) {
				t.Fatalf("first key decoded wrong")
			}
			if len(keys) > 1 && !bytes.Equal(keys[1].Key, k2) {
				t.Fatalf("second key decoded wrong")
			}
		})
	}
	bad := []struct {
		name, spec, want string
	}{
		{"empty", "", "no master key"},
		{"only comments", "# nothing\n\n  \n", "no master key"},
		{"no colon", b1, "entry 1: want id:base64key"},
		{"no colon second", "a:" + b1 + "," + b2, "entry 2: want id:base64key"},
		{"empty id", ":" + b1, "entry 1: id is empty"},
		{"long id", strings.Repeat("a", 33) + ":" + b1, "entry 1: id is 33 characters"},
		{"swapped", b1 + ":mk-1", "entry 1: id is 44 characters"},
		{"bad id char", "mk.1:" + b1, "entry 1: id has a character"},
		{"dup id", "a:" + b1 + "\nb:" + b2 + "\na:" + b2, `entry 3 (id "a"): the id is already used by entry 1`},
		{"empty key", "a:", `entry 1 (id "a"): key is empty`},
		{"not base64", "a:" + b1[:20] + "!!" + b1[22:], `entry 1 (id "a"): key is not base64`},
		{"short key", "a:" + b1 + ",b:" + b16, `entry 2 (id "b"): key decodes to 16 bytes, want 32`},
		{"long key", "a:" + base64.StdEncoding.EncodeToString(append(k1, k1...)), `key decodes to 64 bytes`},
		{"zero key", "a:" + zero, `key is all zero bytes`},
	}
	secrets := append(keyMaterial(k1), keyMaterial(k2)...)
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			keys, err := ParseMasterKeys(tc.spec)
			if err == nil {
				t.Fatalf("no error; keys %v", keys)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q contains key material %q", err, s)
				}
			}
		})
	}
}

func TestMasterKeyNeverPrintsKey(t *testing.T) {
	m := mustMaster(t, "mk-1")
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s %x %d %q", m, m, m, m, m, m, m),
		fmt.Sprintf("%v", []MasterKey{m}), fmt.Sprintf("%+v", struct{ K MasterKey }{m}), string(js)} {
		if !strings.Contains(out, "mk-1") {
			t.Fatalf("%q does not name the key", out)
		}
		for _, s := range keyMaterial(m.Key) {
			if strings.Contains(out, s) {
				t.Fatalf("%q contains key material", out)
			}
		}
	}
}

func TestNewMasterKey(t *testing.T) {
	a, b := mustMaster(t, "a"), mustMaster(t, "b")
	if len(a.Key) != 32 || bytes.Equal(a.Key, b.Key) {
		t.Fatal("master keys are not random 32-byte keys")
	}
	if _, err := NewMasterKey("bad id"); err == nil {
		t.Fatal("NewMasterKey accepted a bad id")
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

func TestLoadKeyFile(t *testing.T) {
	m := mustMaster(t, "mk-1")
	spec := "# keys\nmk-1:" + base64.StdEncoding.EncodeToString(m.Key) + "\n"
	path := filepath.Join(t.TempDir(), "master.key")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660, 0o666} {
		writeFile(t, path, spec, mode)
		_, err := LoadKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("mode %#o: error %v, want one saying chmod 600 %s", mode, err, path)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		writeFile(t, path, spec, mode)
		keys, err := LoadKeyFile(path)
		if err != nil {
			t.Fatalf("mode %#o: %v", mode, err)
		}
		if len(keys) != 1 || keys[0].ID != "mk-1" || !bytes.Equal(keys[0].Key, m.Key) {
			t.Fatalf("keys %v", keys)
		}
	}
	// A bad file's error names the file and the entry, not the key.
	writeFile(t, path, "mk-1:"+base64.StdEncoding.EncodeToString(m.Key[:20]), 0o600)
	_, err := LoadKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `entry 1 (id "mk-1")`) {
		t.Fatalf("error %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLoadMasterKeys(t *testing.T) {
	dir := t.TempDir()
	fileKey, envKey := mustMaster(t, "file"), mustMaster(t, "env")
	path := filepath.Join(dir, "master.key")
	writeFile(t, path, "file:"+base64.StdEncoding.EncodeToString(fileKey.Key), 0o600)
	env := "env:" + base64.StdEncoding.EncodeToString(envKey.Key)
	ids := func(keys []MasterKey, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		var s []string
		for _, k := range keys {
			s = append(s, k.ID)
		}
		return fmt.Sprint(s)
	}
	for _, tc := range []struct {
		env, path, want string
	}{
		{env, path, "[env]"},
		{env, "", "[env]"},
		{"", path, "[file]"},
		{"  \n", path, "[file]"},
		{"", filepath.Join(dir, "missing"), "[]"},
		{"", "", "[]"},
		{"env:short", path, "error: seal: PARLEY_MASTER_KEY: master key entry 1"},
	} {
		got := ids(LoadMasterKeys(tc.env, tc.path))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("LoadMasterKeys(%q, %q) = %s, want %s", tc.env, tc.path, got, tc.want)
		}
	}
	if keys, err := LoadMasterKeys("", ""); keys != nil || err != nil {
		t.Fatalf("nothing configured: %v %v", keys, err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadMasterKeys("", path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable file: %v", err)
	}
}

func TestWriteNewKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "parley")
	path := filepath.Join(dir, "master.key")
	keys, err := WriteNewKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || len(keys[0].Key) != 32 {
		t.Fatalf("keys %v", keys)
	}
	if !regexp.MustCompile(`^mk-20\d{6}-[0-9a-f]{8}$`).MatchString(keys[0].ID) {
		t.Fatalf("id %q, want mk-YYYYMMDD-RANDOM", keys[0].ID)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %#o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm()&0o077 != 0 {
		t.Fatalf("directory mode %#o, want 0700", di.Mode().Perm())
	}
	content, _ := os.ReadFile(path)
	for _, want := range []string{"# ", "id:base64key", "backups"} {
		if !strings.Contains(string(content), want) {
			t.Fatalf("key file lacks %q:\n%s", want, content)
		}
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != keys[0].ID || !bytes.Equal(loaded[0].Key, keys[0].Key) {
		t.Fatalf("loaded %v, wrote %v", loaded, keys)
	}
	// O_EXCL: never overwrite a key file (that would shred everything).
	if _, err := WriteNewKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteNewKeyFile: %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, content) {
		t.Fatal("the key file changed")
	}
}

func TestNewKeyring(t *testing.T) {
	st := newFakeStore()
	if _, err := NewKeyring(st, nil, Options{}); !errors.Is(err, ErrNoMasterKey) {
		t.Fatalf("no masters: %v", err)
	}
	m := mustMaster(t, "a")
	for name, masters := range map[string][]MasterKey{
		"short key": {{ID: "a", Key: m.Key[:16]}},
		"dup id":    {m, m},
		"bad id":    {{ID: "a b", Key: m.Key}},
	} {
		if _, err := NewKeyring(st, masters, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	k := mustKeyring(t, st, Options{}, mustMaster(t, "new"), m)
	if k.CurrentMasterKeyID() != "new" {
		t.Fatalf("current %q", k.CurrentMasterKeyID())
	}
}

func TestRoundTrip(t *testing.T) {
	st := newFakeStore()
	m1 := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m1)
	node2 := mustKeyring(t, st, Options{}, mustMaster(t, "m0"), m1)
	aad := TurnAAD("t1", "conv_1", "item_1")
	for _, n := range []int{0, 1, 15, 16, 17, 200, 2000, 30000} {
		pt := bytes.Repeat([]byte("x"), n)
		s := mustSeal(t, k, "t1", pt, aad)
		if len(s) != n+37 || s[0] != 2 {
			t.Fatalf("%d bytes sealed to %d (version %d)", n, len(s), s[0])
		}
		if n > 16 && bytes.Contains(s, pt[:16]) {
			t.Fatal("plaintext in the sealed value")
		}
		mustOpen(t, k, "t1", s, aad, pt)
		// Another keyring (another node) with the same master opens it.
		mustOpen(t, node2, "t1", s, aad, pt)
	}
	a, b := mustSeal(t, k, "t1", []byte("same"), aad), mustSeal(t, k, "t1", []byte("same"), aad)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are equal (nonce reuse)")
	}
	if st.count() != 1 {
		t.Fatalf("%d data keys stored, want 1", st.count())
	}
}

func TestOpenFailures(t *testing.T) {
	st := newFakeStore()
	k := mustKeyring(t, st, Options{}, mustMaster(t, "m1"))
	pt := []byte("I'd like to move my appointment to Tuesday.")
	aad := TurnAAD("t1", "conv_1", "item_1")
	s := mustSeal(t, k, "t1", pt, aad)
	mustSeal(t, k, "t2", []byte("t2 has a key"), TurnAAD("t2", "c", "i"))

	for name, other := range map[string][]byte{
		"other item":         TurnAAD("t1", "conv_1", "item_2"),
		"other conversation": TurnAAD("t1", "conv_2", "item_1"),
		"audio row":          AudioAAD("t1", "conv_1", "item_1"),
		"no aad":             nil,
	} {
		_, err := k.Open(ctx, "t1", s, other)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	for i := range s {
		bad := bytes.Clone(s)
		bad[i] ^= 0x01
		// A changed key id names a key the tenant does not have: without
		// that key, a tampered id and a value sealed under a shredded key
		// cannot be told apart, and both are unreadable.
		want := ErrCorrupt
		if i >= 1 && i < 1+keyIDSize {
			want = ErrShredded
		}
		if _, err := k.Open(ctx, "t1", bad, aad); !errors.Is(err, want) {
			t.Fatalf("byte %d flipped: %v, want %v", i, err, want)
		}
	}
	for _, n := range []int{0, 1, 13, 28, len(s) - 1} {
		if _, err := k.Open(ctx, "t1", s[:n], aad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v, want ErrCorrupt", n, err)
		}
	}
	v3 := bytes.Clone(s)
	v3[0] = 3
	if _, err := k.Open(ctx, "t1", v3, aad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("version 3: %v", err)
	}
	// Another tenant's key does not open it, even with the right aad: the
	// value names a key that tenant does not have.
	if _, err := k.Open(ctx, "t2", s, aad); !errors.Is(err, ErrShredded) {
		t.Fatalf("other tenant: %v, want ErrShredded", err)
	}
	// A tenant without a key: shredded or never sealed.
	if _, err := k.Open(ctx, "t3", s, aad); !errors.Is(err, ErrShredded) {
		t.Fatalf("tenant without key: %v, want ErrShredded", err)
	}
	if st.count() != 2 {
		t.Fatalf("Open created a data key: %d stored", st.count())
	}
	if _, err := k.Seal(ctx, "", pt, aad); err == nil {
		t.Fatal("Seal for an empty tenant id")
	}
	mustOpen(t, k, "t1", s, aad, pt)
}

func TestWrappedKeyBinding(t *testing.T) {
	st := newFakeStore()
	m1 := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m1)
	mustSeal(t, k, "t1", []byte("a"), nil)
	mustSeal(t, k, "t2", []byte("b"), nil)
	// A wrapped key copied to another tenant's row does not unwrap there.
	st.mu.Lock()
	k2 := st.keys["t2"]
	k2.Wrapped = bytes.Clone(st.keys["t1"].Wrapped)
	st.keys["t2"] = k2
	st.mu.Unlock()
	k.Forget("t2")
	if _, err := k.Seal(ctx, "t2", []byte("x"), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved wrapped key: %v, want ErrCorrupt", err)
	}
	// Relabelled with another loaded master key id: does not unwrap either.
	m2 := mustMaster(t, "m2")
	m2.Key = m1.Key
	kk := mustKeyring(t, st, Options{}, m2, mustMaster(t, "m1"))
	if _, err := kk.Seal(ctx, "t1", []byte("x"), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong master key: %v, want ErrCorrupt", err)
	}
}

func TestUnknownMasterKey(t *testing.T) {
	st := newFakeStore()
	old := mustKeyring(t, st, Options{}, mustMaster(t, "mk-old"))
	s := mustSeal(t, old, "t1", []byte("hello"), nil)
	other := mustKeyring(t, st, Options{}, mustMaster(t, "mk-other"))
	_, err := other.Open(ctx, "t1", s, nil)
	wantErr(t, err, ErrUnknownMasterKey)
	if !strings.Contains(err.Error(), `"mk-old"`) {
		t.Fatalf("error %q does not name the master key", err)
	}
	_, err = other.Seal(ctx, "t1", []byte("x"), nil)
	wantErr(t, err, ErrUnknownMasterKey)
	_, err = other.Pseudonym(ctx, "t1", "+15551234567")
	wantErr(t, err, ErrUnknownMasterKey)
}

func TestShred(t *testing.T) {
	st := newFakeStore()
	clk := newClock()
	m := mustMaster(t, "m1")
	a := mustKeyring(t, st, Options{CacheTTL: time.Minute, Now: clk.Now}, m)
	b := mustKeyring(t, st, Options{CacheTTL: time.Minute, Now: clk.Now}, m) // another node
	aad := TurnAAD("t1", "c1", "i1")
	s := mustSeal(t, a, "t1", []byte("secret"), aad)
	mustOpen(t, b, "t1", s, aad, []byte("secret")) // b caches the key
	keep := mustSeal(t, a, "t2", []byte("t2"), nil)

	if err := a.Shred(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	_, err := a.Open(ctx, "t1", s, aad)
	wantErr(t, err, ErrShredded)
	// b sees the shred at most CacheTTL late.
	clk.Advance(30 * time.Second)
	mustOpen(t, b, "t1", s, aad, []byte("secret"))
	clk.Advance(31 * time.Second)
	_, err = b.Open(ctx, "t1", s, aad)
	wantErr(t, err, ErrShredded)
	// Shredding twice is fine; other tenants are untouched.
	if err := a.Shred(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, b, "t2", keep, nil, []byte("t2"))
	// New data gets a new key; the old data stays unreadable.
	s2 := mustSeal(t, a, "t1", []byte("new"), aad)
	mustOpen(t, b, "t1", s2, aad, []byte("new"))
	_, err = b.Open(ctx, "t1", s, aad)
	wantErr(t, err, ErrShredded) // the value names the old key
}

func TestCache(t *testing.T) {
	st := newFakeStore()
	clk := newClock()
	m := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{CacheTTL: 10 * time.Second, Now: clk.Now}, m)
	s := mustSeal(t, k, "t1", []byte("x"), nil)
	gets := st.gets.Load()
	for range 100 {
		mustSeal(t, k, "t1", []byte("x"), nil)
		mustOpen(t, k, "t1", s, nil, []byte("x"))
		if _, err := k.Pseudonym(ctx, "t1", "u"); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.gets.Load() - gets; n != 0 {
		t.Fatalf("%d store reads with a warm cache", n)
	}
	clk.Advance(10 * time.Second)
	mustOpen(t, k, "t1", s, nil, []byte("x"))
	mustOpen(t, k, "t1", s, nil, []byte("x"))
	if n := st.gets.Load() - gets; n != 1 {
		t.Fatalf("%d store reads after the TTL, want 1", n)
	}
	k.Forget("t1")
	mustOpen(t, k, "t1", s, nil, []byte("x"))
	if n := st.gets.Load() - gets; n != 2 {
		t.Fatalf("%d store reads after Forget, want 2", n)
	}

	// Negative TTL: no cache.
	nc := mustKeyring(t, st, Options{CacheTTL: -1}, m)
	gets = st.gets.Load()
	for range 3 {
		mustOpen(t, nc, "t1", s, nil, []byte("x"))
	}
	if n := st.gets.Load() - gets; n != 3 {
		t.Fatalf("%d store reads without a cache, want 3", n)
	}

	// Expired entries of tenants no longer used are swept.
	for i := range 2 * sweepEvery {
		mustSeal(t, k, fmt.Sprintf("sweep-%04d", i), nil, nil)
		if i == sweepEvery/2 {
			clk.Advance(time.Minute)
		}
	}
	n := 0
	k.cache.Range(func(any, any) bool { n++; return true })
	if n > 2*sweepEvery-sweepEvery/2 {
		t.Fatalf("%d cache entries: expired ones were not swept", n)
	}
}

// TestForgetDuringLoad: a data key read before a Forget (a shred) is not
// cached after it.
func TestForgetDuringLoad(t *testing.T) {
	st := newFakeStore()
	m := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m)
	s := mustSeal(t, k, "t1", []byte("x"), nil)
	k.Forget("t1")
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.getHook = func(string) {
		once.Do(func() { close(entered); <-release })
	}
	done := make(chan error)
	go func() {
		_, err := k.Open(ctx, "t1", s, nil)
		done <- err
	}()
	<-entered
	k.Forget("t1")
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if k.cached("t1") != nil {
		t.Fatal("a key loaded across a Forget was cached")
	}
}

func TestPseudonym(t *testing.T) {
	st := newFakeStore()
	m := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m)
	p, err := k.Pseudonym(ctx, "t1", "+15551234567")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^eu_[0-9a-f]{32}$`).MatchString(p) {
		t.Fatalf("pseudonym %q", p)
	}
	if strings.Contains(p, "5551234567") {
		t.Fatal("pseudonym contains the id")
	}
	again, _ := k.Pseudonym(ctx, "t1", "+15551234567")
	other := mustKeyring(t, st, Options{}, m)
	fromOther, _ := other.Pseudonym(ctx, "t1", "+15551234567")
	if again != p || fromOther != p {
		t.Fatalf("pseudonym not stable: %s %s %s", p, again, fromOther)
	}
	otherID, _ := k.Pseudonym(ctx, "t1", "+15551234568")
	otherTenant, _ := k.Pseudonym(ctx, "t2", "+15551234567")
	if otherID == p || otherTenant == p {
		t.Fatalf("pseudonyms collide: %s %s %s", p, otherID, otherTenant)
	}
	if e, err := k.Pseudonym(ctx, "t1", ""); e != "" || err != nil {
		t.Fatalf("empty id: %q %v", e, err)
	}
	if e, err := k.Pseudonym(ctx, "t-none", ""); e != "" || err != nil || st.count() != 2 {
		t.Fatalf("empty id: %q %v, %d keys", e, err, st.count())
	}
	if err := k.Shred(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	after, err := k.Pseudonym(ctx, "t1", "+15551234567")
	if err != nil {
		t.Fatal(err)
	}
	if after == p {
		t.Fatal("pseudonym unchanged after a shred")
	}
}

func TestRotate(t *testing.T) {
	st := newFakeStore()
	m1, m2 := mustMaster(t, "mk-1"), mustMaster(t, "mk-2")
	old := mustKeyring(t, st, Options{}, m1)
	const n = 1203 // more than two pages
	sealed := make([][]byte, n)
	tenant := func(i int) string { return fmt.Sprintf("t%05d", i) }
	for i := range n {
		sealed[i] = mustSeal(t, old, tenant(i), []byte(tenant(i)), AgentAAD(tenant(i), "agent"))
	}
	// During the rotation, nodes hold both keys and serve.
	node1 := mustKeyring(t, st, Options{}, m2, m1)
	node2 := mustKeyring(t, st, Options{}, m2, m1)
	mustOpen(t, node1, tenant(0), sealed[0], AgentAAD(tenant(0), "agent"), []byte(tenant(0)))
	mustSeal(t, node1, "t-new", []byte("new tenant"), nil) // wrapped by mk-2 already

	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, node := range []*Keyring{node1, node2} {
		wg.Go(func() { counts[i], errs[i] = node.Rotate(ctx) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if counts[0]+counts[1] != n {
		t.Fatalf("rewrapped %d + %d, want %d", counts[0], counts[1], n)
	}
	for id, k := range st.snapshot() {
		if k.MasterKeyID != "mk-2" {
			t.Fatalf("%s still wrapped by %s", id, k.MasterKeyID)
		}
	}
	if again, err := node1.Rotate(ctx); again != 0 || err != nil {
		t.Fatalf("second rotation: %d %v", again, err)
	}
	onlyNew := mustKeyring(t, st, Options{}, m2)
	onlyOld := mustKeyring(t, st, Options{}, m1)
	for i := range n {
		mustOpen(t, onlyNew, tenant(i), sealed[i], AgentAAD(tenant(i), "agent"), []byte(tenant(i)))
	}
	_, err := onlyOld.Open(ctx, tenant(7), sealed[7], AgentAAD(tenant(7), "agent"))
	wantErr(t, err, ErrUnknownMasterKey)
	// Old cached keys keep working: the data key did not change.
	mustOpen(t, old, tenant(0), sealed[0], AgentAAD(tenant(0), "agent"), []byte(tenant(0)))
}

func TestRotateReportsUnreadableKeys(t *testing.T) {
	st := newFakeStore()
	lost, m1, m2 := mustMaster(t, "mk-lost"), mustMaster(t, "mk-1"), mustMaster(t, "mk-2")
	for i := range 3 {
		mustSeal(t, mustKeyring(t, st, Options{}, lost), fmt.Sprintf("lost%d", i), nil, nil)
	}
	for i := range 5 {
		mustSeal(t, mustKeyring(t, st, Options{}, m1), fmt.Sprintf("ok%d", i), nil, nil)
	}
	n, err := mustKeyring(t, st, Options{}, m2, m1).Rotate(ctx)
	if n != 5 {
		t.Fatalf("rewrapped %d, want 5", n)
	}
	wantErr(t, err, ErrUnknownMasterKey)
	if !strings.Contains(err.Error(), "mk-lost") || !strings.Contains(err.Error(), "lost2") {
		t.Fatalf("error %q", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := mustKeyring(t, st, Options{}, m2, m1).Rotate(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled rotation: %v", err)
	}
}

// TestBackup: a database backup taken before a shred keeps the tenant's
// wrapped data key; once the master key is rotated and the old one
// destroyed, that copy cannot be unwrapped any more.
func TestBackup(t *testing.T) {
	st := newFakeStore()
	m1, m2 := mustMaster(t, "mk-1"), mustMaster(t, "mk-2")
	k := mustKeyring(t, st, Options{}, m1)
	aad := TurnAAD("gone", "c", "i")
	gone := mustSeal(t, k, "gone", []byte("erase me"), aad)
	kept := mustSeal(t, k, "kept", []byte("keep me"), nil)
	backup := st.snapshot()

	if err := k.Shred(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// Before the rotation the backup still reveals the shredded tenant to
	// whoever holds mk-1: that is why the old master key must be destroyed.
	mustOpen(t, mustKeyring(t, restored(backup), Options{}, m1), "gone", gone, aad, []byte("erase me"))

	if n, err := mustKeyring(t, st, Options{}, m2, m1).Rotate(ctx); n != 1 || err != nil {
		t.Fatalf("rotate: %d %v", n, err)
	}
	// mk-1 destroyed: only mk-2 is left.
	live := mustKeyring(t, st, Options{}, m2)
	mustOpen(t, live, "kept", kept, nil, []byte("keep me"))
	_, err := live.Open(ctx, "gone", gone, aad)
	wantErr(t, err, ErrShredded)

	fromBackup := mustKeyring(t, restored(backup), Options{}, m2)
	_, err = fromBackup.Open(ctx, "gone", gone, aad)
	wantErr(t, err, ErrUnknownMasterKey)
	// The backup's wrapped key itself does not unwrap under mk-2, whatever
	// id it is labelled with.
	relabelled := backup["gone"]
	relabelled.MasterKeyID = "mk-2"
	_, err = fromBackup.unwrap("gone", &relabelled)
	wantErr(t, err, ErrCorrupt)
	// The kept tenant's old data key in the backup is mk-1's too: a
	// restore needs the master key that was current at backup time.
	_, err = fromBackup.Open(ctx, "kept", kept, nil)
	wantErr(t, err, ErrUnknownMasterKey)
}

func TestConcurrentFirstSeal(t *testing.T) {
	st := newFakeStore()
	st.getHook = func(string) { time.Sleep(2 * time.Millisecond) } // widen the race
	m := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m)
	const g = 32
	out := make([][]byte, g)
	errs := make([]error, g)
	pseud := make([]string, g)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range g {
		wg.Go(func() {
			<-start
			if i%4 == 0 {
				pseud[i], errs[i] = k.Pseudonym(ctx, "t1", "user")
				return
			}
			out[i], errs[i] = k.Seal(ctx, "t1", []byte("hi"), nil)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := st.creates.Load(); c != 1 {
		t.Fatalf("%d CreateDataKey calls, want 1", c)
	}
	for i := range g {
		if out[i] != nil {
			mustOpen(t, k, "t1", out[i], nil, []byte("hi"))
		}
		if i%4 == 0 && pseud[i] != pseud[0] {
			t.Fatal("pseudonyms differ")
		}
	}

	// Two nodes racing: one data key wins and both use it.
	st2 := newFakeStore()
	st2.getHook = func(string) { time.Sleep(time.Millisecond) }
	nodes := []*Keyring{mustKeyring(t, st2, Options{}, m), mustKeyring(t, st2, Options{}, m)}
	start = make(chan struct{})
	for i := range g {
		wg.Go(func() {
			<-start
			out[i], errs[i] = nodes[i%2].Seal(ctx, "t1", []byte("hi"), nil)
		})
	}
	close(start)
	wg.Wait()
	for i := range g {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		mustOpen(t, nodes[(i+1)%2], "t1", out[i], nil, []byte("hi"))
	}
	if st2.count() != 1 {
		t.Fatalf("%d data keys stored", st2.count())
	}
}

// TestCanceledLoader: callers waiting on a load whose caller gave up load
// again themselves.
func TestCanceledLoader(t *testing.T) {
	st := newFakeStore()
	m := mustMaster(t, "m1")
	k := mustKeyring(t, st, Options{}, m)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.getHook = func(string) { once.Do(func() { close(entered); <-release }) }
	cctx, cancel := context.WithCancel(ctx)
	first := make(chan error)
	go func() {
		_, err := k.Seal(cctx, "t1", []byte("x"), nil)
		first <- err
	}()
	<-entered
	second := make(chan error)
	go func() {
		_, err := k.Seal(ctx, "t1", []byte("x"), nil)
		second <- err
	}()
	// Let the second caller join the flight, then cancel the first.
	for {
		k.mu.Lock()
		joined := len(k.flights) == 1
		k.mu.Unlock()
		if joined {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	cancel()
	close(release)
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second: %v", err)
	}
}

func TestAAD(t *testing.T) {
	all := map[string][]byte{
		"turn a|bc|d":  TurnAAD("a", "bc", "d"),
		"turn ab|c|d":  TurnAAD("ab", "c", "d"),
		"turn a|b|cd":  TurnAAD("a", "b", "cd"),
		"turn a|bc|":   TurnAAD("a", "bc", ""),
		"audio a|bc|d": AudioAAD("a", "bc", "d"),
		"agent a|bc":   AgentAAD("a", "bc"),
		"agent ab|c":   AgentAAD("ab", "c"),
		"turn a||":     TurnAAD("a", "", ""),
		"agent a|":     AgentAAD("a", ""),
	}
	seen := map[string]string{}
	for name, b := range all {
		if prev, dup := seen[string(b)]; dup {
			t.Fatalf("%s and %s encode alike", name, prev)
		}
		seen[string(b)] = name
	}
	if !bytes.Equal(TurnAAD("t", "c", "i"), TurnAAD("t", "c", "i")) {
		t.Fatal("TurnAAD is not deterministic")
	}
}

var _ storage.Privacy = storage.Backend(nil)

func benchKeyring(b *testing.B) *Keyring {
	m, err := NewMasterKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	return mustKeyring(b, newFakeStore(), Options{}, m)
}

// typicalTurn is a ~200-byte transcript turn.
var typicalTurn = []byte(strings.Repeat("I'd like to move my appointment on Tuesday to Thursday afternoon, please. ", 3)[:200])

func BenchmarkSeal(b *testing.B) {
	k := benchKeyring(b)
	aad := TurnAAD("tenant_bench", "conv_01JD9ZQ2W0000000000000000", "item_01JD9ZQ2W0000000000000001")
	mustSeal(b, k, "tenant_bench", typicalTurn, aad)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalTurn)))
	for b.Loop() {
		if _, err := k.Seal(ctx, "tenant_bench", typicalTurn, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := benchKeyring(b)
	aad := TurnAAD("tenant_bench", "conv_01JD9ZQ2W0000000000000000", "item_01JD9ZQ2W0000000000000001")
	s := mustSeal(b, k, "tenant_bench", typicalTurn, aad)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalTurn)))
	for b.Loop() {
		if _, err := k.Open(ctx, "tenant_bench", s, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealParallel(b *testing.B) {
	k := benchKeyring(b)
	aad := TurnAAD("tenant_bench", "conv_1", "item_1")
	mustSeal(b, k, "tenant_bench", typicalTurn, aad)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalTurn)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Seal(ctx, "tenant_bench", typicalTurn, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPseudonym(b *testing.B) {
	k := benchKeyring(b)
	if _, err := k.Pseudonym(ctx, "tenant_bench", "+15551234567"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Pseudonym(ctx, "tenant_bench", "+15551234567"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCold is a cache miss: read the wrapped key (from memory
// here), unwrap it, set up AES-GCM and the pseudonym key.
func BenchmarkOpenCold(b *testing.B) {
	k := benchKeyring(b)
	aad := TurnAAD("tenant_bench", "conv_1", "item_1")
	s := mustSeal(b, k, "tenant_bench", typicalTurn, aad)
	b.ReportAllocs()
	for b.Loop() {
		k.Forget("tenant_bench")
		if _, err := k.Open(ctx, "tenant_bench", s, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseMasterKeys: a master key spec comes from the environment or a
// file; no input panics, an accepted spec gives distinct ids and 32-byte
// keys, and an error message never holds the key material it was given.
func FuzzParseMasterKeys(f *testing.F) {
	f.Add("mk-1:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY=")
	f.Add("a:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY=,b:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY")
	f.Add("# comment\n\nmk:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY=\n")
	f.Add("MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY=")
	f.Add("x:y:z")
	f.Fuzz(func(t *testing.T, spec string) {
		keys, err := ParseMasterKeys(spec)
		if err != nil {
			for _, part := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' || r == ':' }) {
				if len(part) >= 40 && strings.Contains(err.Error(), part) {
					t.Fatalf("error %q holds key material %q", err, part)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if len(k.Key) != 32 || k.ID == "" || seen[k.ID] {
				t.Fatalf("accepted %q: key %q of %d bytes (ids seen %v)", spec, k.ID, len(k.Key), seen)
			}
			seen[k.ID] = true
		}
	})
}

// TestCheck: a keyring whose master key does not unwrap the stored data
// keys (another key under the same id, or a missing id) fails Check, and
// one holding the right keys passes it.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	store := newFakeStore()
	right, _ := NewMasterKey("mk-1")
	kr, err := NewKeyring(store, []MasterKey{right}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Check(ctx); err != nil {
		t.Fatalf("empty store: %v", err)
	}
	for _, tenant := range []string{"t1", "t2"} {
		if _, err := kr.Seal(ctx, tenant, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := kr.Check(ctx); err != nil {
		t.Fatalf("right key: %v", err)
	}
	impostor, _ := NewMasterKey("mk-1") // same id, other key
	other, _ := NewMasterKey("mk-2")
	for _, tc := range []struct {
		name    string
		masters []MasterKey
		want    error
	}{
		{"same id, other key", []MasterKey{impostor}, ErrCorrupt},
		{"id not loaded", []MasterKey{other}, ErrUnknownMasterKey},
		{"new key first, old kept", []MasterKey{other, right}, nil},
	} {
		kr2, err := NewKeyring(store, tc.masters, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := kr2.Check(ctx); !errors.Is(err, tc.want) || (tc.want != nil && !strings.Contains(err.Error(), "mk-")) {
			t.Errorf("%s: Check = %v, want %v naming the key id", tc.name, err, tc.want)
		}
	}
}

// TestShreddedKeyRecognised: after a shred and a new data key, what was
// sealed under the old key opens to ErrShredded, not ErrCorrupt: also
// when another node, still caching the old key, sealed it after the new
// key was made, whatever the clocks say.
func TestShreddedKeyRecognised(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	m := mustMaster(t, "m1")
	a := mustKeyring(t, st, Options{}, m)
	b := mustKeyring(t, st, Options{}, m) // another node
	aad := TurnAAD("t1", "c", "i")
	old := mustSeal(t, a, "t1", []byte("before"), aad)
	if _, err := b.Open(ctx, "t1", old, aad); err != nil { // b caches the old key now
		t.Fatal(err)
	}
	if err := a.Shred(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	fresh := mustSeal(t, a, "t1", []byte("after"), aad) // a makes a new key
	stale := mustSeal(t, b, "t1", []byte("stale"), aad) // b still seals under the old one
	for name, v := range map[string][]byte{"sealed before the shred": old, "sealed by a node caching the old key": stale} {
		if _, err := a.Open(ctx, "t1", v, aad); !errors.Is(err, ErrShredded) {
			t.Errorf("%s: Open = %v, want ErrShredded", name, err)
		}
	}
	mustOpen(t, a, "t1", fresh, aad, []byte("after"))
	// A tampered key id is not a way to fake a shred of a good value
	// into opening: it is refused too.
	bad := append([]byte(nil), fresh...)
	bad[1] ^= 1
	if _, err := a.Open(ctx, "t1", bad, aad); err == nil {
		t.Error("a value with a changed key id opened")
	}
}
