package manage

import (
	"crypto/rand"
	"crypto/sha256"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Token and key formats: prefix + 43 base62 characters (256 bits), found
// by their first prefixLen characters and stored only as a SHA-256 hash
// (the gateway's HashKey/newKey format).
const (
	prefixLen     = 12 // access.KeyPrefixLen, gateway.KeyPrefixLen
	secretLen     = 43
	sessionPrefix = "ps_" // sign-in sessions
	invitePrefix  = "pi_" // invitation tokens
	secretPrefix  = "sk_"
	publicPrefix  = "pk_"
)

// newToken returns prefix + 43 random base62 characters, unbiased.
func newToken(prefix string) string { return prefix + randomBase62(secretLen) }

// newID returns a record id: prefix + 20 random base62 characters.
func newID(prefix string) string { return prefix + randomBase62(20) }

func randomBase62(n int) string {
	out := make([]byte, 0, n)
	var raw [64]byte
	for len(out) < n {
		if _, err := rand.Read(raw[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		for _, b := range raw {
			if b < 248 && len(out) < n { // 248 = 4*62: unbiased
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// hashSecret is the stored form of a key or token.
func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// wellFormed reports whether tok is prefix + 43 base62 characters.
func wellFormed(tok, prefix string) bool {
	if len(tok) != len(prefix)+secretLen || tok[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(tok); i++ {
		c := tok[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
