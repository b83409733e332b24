package access

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

func TestPasswordHashVerify(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse battery", true}, {"correct horse batter", false}, {"", false}, {"Correct horse battery", false}} {
		ok, rehash, err := VerifyPassword(h, tc.pw)
		if err != nil || ok != tc.want || rehash {
			t.Errorf("%q: ok %v rehash %v err %v", tc.pw, ok, rehash, err)
		}
	}
}

func TestPasswordWeakerParamsNeedRehash(t *testing.T) {
	// A hash made with t=1 (weaker than today's t=2) still verifies, and
	// asks to be replaced.
	salt := []byte("saltsaltsaltsalt")
	key := argon2.IDKey([]byte("old password!"), salt, 1, argonMemoryKiB, 1, 32)
	enc := base64.RawStdEncoding
	old := "$argon2id$v=19$m=19456,t=1,p=1$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key)
	ok, rehash, err := VerifyPassword(old, "old password!")
	if err != nil || !ok || !rehash {
		t.Fatalf("ok %v rehash %v err %v", ok, rehash, err)
	}
	if ok, rehash, _ := VerifyPassword(old, "wrong password"); ok || rehash {
		t.Fatal("a wrong password asks for a rehash")
	}
}

func TestPasswordBadHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5"} {
		if _, _, err := VerifyPassword(h, "x"); !errors.Is(err, ErrBadHash) {
			t.Errorf("%q: err %v", h, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{{"short", false}, {"aaaaaaaaaaaa", false}, {"ten chars!", true}, {strings.Repeat("ab", 129), false}, {"pässwörtér", true}} {
		if err := CheckPassword(tc.pw); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrWeakPassword)) {
			t.Errorf("%q: %v", tc.pw, err)
		}
	}
}

func TestRoleTable(t *testing.T) {
	cases := []struct {
		role, action string
		ok           bool
	}{
		{RoleViewer, ActAgentRead, true}, {RoleViewer, ActAgentWrite, false}, {RoleViewer, ActKeyWrite, false},
		{RoleMember, ActAgentWrite, true}, {RoleMember, ActKeyWrite, false}, {RoleMember, ActAuditRead, false},
		{RoleAdmin, ActKeyWrite, true}, {RoleAdmin, ActAuditRead, true}, {RoleAdmin, ActTenantDelete, false},
		{RoleOwner, ActTenantDelete, true}, {"", ActAgentRead, false}, {"root", ActAgentRead, false}, {RoleOwner, "nope", false},
		{RoleViewer, ActPrivacyRead, true}, {RoleViewer, ActUsageRead, true}, {RoleViewer, ActConversationRd, false},
		{RoleMember, ActConversationRd, true}, {RoleMember, ActDataExport, false}, {RoleMember, ActDataDelete, false},
		{RoleAdmin, ActDataExport, true}, {RoleAdmin, ActDataDelete, true}, {RoleAdmin, ActPrivacyWrite, false},
		{RoleOwner, ActPrivacyWrite, true},
	}
	for _, c := range cases {
		if got := Can(c.role, c.action); got != c.ok {
			t.Errorf("Can(%s, %s) = %v", c.role, c.action, got)
		}
	}
	for _, c := range []struct {
		role, target string
		ok           bool
	}{{RoleOwner, RoleOwner, true}, {RoleAdmin, RoleOwner, false}, {RoleAdmin, RoleAdmin, true}, {RoleMember, RoleViewer, false}, {RoleOwner, "god", false}} {
		if CanGrant(c.role, c.target) != c.ok {
			t.Errorf("CanGrant(%s, %s)", c.role, c.target)
		}
	}
	for _, a := range Actions() {
		if !Can(RoleOwner, a) {
			t.Errorf("the owner cannot %s", a)
		}
	}
}

func TestLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(10, 3, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow("k")
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("4th: ok %v wait %v, want refused for about 100ms", ok, wait)
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("refused after the refill")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(1, 1, 160)
	l.now = func() time.Time { return now }
	for i := 0; i < 10000; i++ {
		l.Allow(fmt.Sprint("ip-", i))
		now = now.Add(time.Millisecond)
	}
	if n := l.Len(); n > 160 {
		t.Fatalf("%d keys remembered, limit 160", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(1, 100, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if ok, _ := l.Allow("shared"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed < 100 || allowed > 101 {
		t.Fatalf("%d of 400 allowed with a burst of 100", allowed)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter(1e9, 1e9, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%len(keys)])
			i++
		}
	})
}

var keys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = fmt.Sprint("key_", i)
	}
	return k
}()

func BenchmarkVerifyPassword(b *testing.B) {
	h, _ := HashPassword("benchmark password")
	for i := 0; i < b.N; i++ {
		_, _, _ = VerifyPassword(h, "benchmark password")
	}
}

// TestREADMERoleTable checks the README's role table against Permissions.
func TestREADMERoleTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, a := range Actions() {
		row := "| `" + a + "` |"
		for _, r := range Roles {
			cell := " - |"
			if Can(r, a) {
				cell = " yes |"
			}
			row += cell
		}
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
}
