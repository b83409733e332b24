package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters (OWASP's password storage cheat sheet: m=19 MiB,
// t=2, p=1 is the recommended floor). Hashes record their parameters, so
// raising them later makes old hashes "need rehash", not fail.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password length bounds, in characters.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// ErrWeakPassword is returned by CheckPassword (wrapped with the reason).
var ErrWeakPassword = errors.New("password too weak")

// ErrBadHash means a stored hash is not in the format HashPassword writes.
var ErrBadHash = errors.New("access: malformed password hash")

// CheckPassword applies the password policy: 10 to 256 characters, not all
// the same character. (Length beats composition rules; NIST SP 800-63B.)
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("%w: use at least %d characters", ErrWeakPassword, MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("%w: use at most %d characters", ErrWeakPassword, MaxPasswordLen)
	case strings.Count(pw, pw[:1]) == len(pw):
		return fmt.Errorf("%w: a single repeated character", ErrWeakPassword)
	}
	return nil
}

// HashPassword returns the argon2id hash of pw in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches the encoded hash (in constant
// time), and whether the hash was made with weaker parameters than today's
// and should be replaced after a successful sign-in.
func VerifyPassword(encoded, pw string) (ok, needsRehash bool, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, false, ErrBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, false, ErrBadHash
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false, false, ErrBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, false, ErrBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, false, ErrBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	ok = subtle.ConstantTimeCompare(got, want) == 1
	needsRehash = m < argonMemoryKiB || t < argonTime || len(want) < argonKeyLen
	return ok, ok && needsRehash, nil
}

// dummyHash is verified against when a sign-in names an unknown email, so
// that the response takes as long as for a known one (no user enumeration
// by timing).
var dummyHash = func() string {
	h, err := HashPassword("parley-dummy-password-for-timing")
	if err != nil {
		panic(err)
	}
	return h
}()

// VerifyNothing spends the time of one password verification.
func VerifyNothing(pw string) { _, _, _ = VerifyPassword(dummyHash, pw) }
