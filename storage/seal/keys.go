package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// KeySize is the size of a master key and of a data key: AES-256.
const KeySize = 32

// MaxKeyIDLen is the longest master key id.
const MaxKeyIDLen = 32

// MasterKey is a key-encryption key: it wraps the tenants' data keys. It
// comes from the environment (PARLEY_MASTER_KEY) or a key file, never from
// the database or the repository. ID is stored next to every data key it
// wraps, so a rotation knows which master key to unwrap with.
type MasterKey struct {
	ID  string
	Key []byte // KeySize bytes
}

// String names the key without its material, so a MasterKey that ends up
// in a log line or an error does not leak.
func (m MasterKey) String() string { return fmt.Sprintf("MasterKey(%s)", m.ID) }

// GoString is String, for %#v.
func (m MasterKey) GoString() string { return m.String() }

// Format prints String whatever the verb (%d or %x of the struct would
// print the key's bytes otherwise).
func (m MasterKey) Format(f fmt.State, verb rune) { io.WriteString(f, m.String()) }

// MarshalJSON writes only the id, for the same reason as String.
func (m MasterKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID string `json:"id"`
	}{m.ID})
}

// NewMasterKey returns a new random master key named id.
func NewMasterKey(id string) (MasterKey, error) {
	if err := checkKeyID(id); err != nil {
		return MasterKey{}, fmt.Errorf("seal: master key id: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return MasterKey{}, fmt.Errorf("seal: generating a master key: %w", err)
	}
	return MasterKey{ID: id, Key: k}, nil
}

// checkKeyID reports why id is not a master key id. It never quotes id:
// a malformed entry may be key material in the wrong place.
func checkKeyID(id string) error {
	if id == "" {
		return errors.New("id is empty")
	}
	if len(id) > MaxKeyIDLen {
		return fmt.Errorf("id is %d characters long, at most %d are allowed", len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("id has a character other than A-Z, a-z, 0-9, _ and - at position %d", i+1)
		}
	}
	return nil
}

// decodeKey decodes a base64 key (standard or URL alphabet, padded or
// not) of exactly KeySize bytes. Its errors never quote s.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("key is empty")
	}
	var k []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err = enc.Strict().DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("key is not base64 (standard or URL alphabet)")
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("key decodes to %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", len(k), KeySize)
	}
	if bytes.Equal(k, make([]byte, KeySize)) {
		return nil, errors.New("key is all zero bytes (a placeholder, not a key)")
	}
	return k, nil
}

// ParseMasterKeys parses master keys: "id:base64key" entries separated by
// commas or newlines; blank lines and lines starting with # are ignored.
// The first key is the current one (it wraps new data keys); the others
// are older keys kept to unwrap data keys during a rotation. Ids are 1-32
// characters of A-Z, a-z, 0-9, _ and -, unique; keys decode (standard or
// URL base64, padded or not) to exactly 32 bytes. Errors name the entry
// by its position (and its id when that is valid) and never include key
// material.
func ParseMasterKeys(spec string) ([]MasterKey, error) {
	keys, err := parseMasterKeys(spec)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return keys, nil
}

// parseMasterKeys is ParseMasterKeys without the "seal: " of its errors.
func parseMasterKeys(spec string) ([]MasterKey, error) {
	var keys []MasterKey
	seen := map[string]int{}
	n := 0
	for line := range strings.Lines(spec) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			id, key, ok := strings.Cut(entry, ":")
			if !ok {
				return nil, fmt.Errorf("master key entry %d: want id:base64key", n)
			}
			id, key = strings.TrimSpace(id), strings.TrimSpace(key)
			if err := checkKeyID(id); err != nil {
				return nil, fmt.Errorf("master key entry %d: %w", n, err)
			}
			if first, dup := seen[id]; dup {
				return nil, fmt.Errorf("master key entry %d (id %q): the id is already used by entry %d", n, id, first)
			}
			seen[id] = n
			k, err := decodeKey(key)
			if err != nil {
				return nil, fmt.Errorf("master key entry %d (id %q): %w", n, id, err)
			}
			keys = append(keys, MasterKey{ID: id, Key: k})
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no master key: want id:base64key entries")
	}
	return keys, nil
}

// LoadKeyFile reads a key file in the ParseMasterKeys format. It refuses a
// file that its group or others may read or write.
func LoadKeyFile(path string) ([]MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: master key file %s is not a regular file", path)
	}
	// Windows reports no meaningful Unix permissions.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("seal: master key file %s is accessible to its group or others (mode %#o); run: chmod 600 %s", path, perm, path)
	}
	const maxSize = 1 << 20
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("seal: master key file %s is larger than %d bytes", path, maxSize)
	}
	keys, err := parseMasterKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("seal: master key file %s: %w", path, err)
	}
	return keys, nil
}

const keyFileHeader = `# Parley master keys. KEEP THIS FILE SECRET.
#
# One "id:base64key" entry per line (or comma-separated); blank lines and
# lines starting with # are ignored. The first entry is the current master
# key: it wraps the tenants' data keys. To rotate, put a new key first, keep
# the old one below it, restart every node, run the rotation, then remove
# the old key.
#
# Keep this file OUT of backups of the database: a backup of the database
# is readable only with this key, and a tenant's data is crypto-shredded
# (unreadable in old backups too) only once every copy of the master key
# that wrapped its data key is gone. Store it separately (a secrets
# manager, or a backup of its own), with mode 0600.
#
# PARLEY_MASTER_KEY, when set, is used instead of this file.
`

// WriteNewKeyFile creates a key file at path holding one new random
// master key, named after today's date and 32 random bits
// ("mk-20261129-1a2b3c4d"), under a comment
// that explains the format. The file is created with mode 0600 and must
// not exist; missing parent directories are created with mode 0700.
func WriteNewKeyFile(path string) ([]MasterKey, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("seal: master key file: %w", err)
		}
	}
	// The date says when; the random part keeps two keys generated the
	// same day (two nodes started at once on an empty database) apart, so
	// Keyring.Check can tell them from each other.
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	k, err := NewMasterKey("mk-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(r[:]))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seal: creating master key file: %w", err)
	}
	content := keyFileHeader + "\n" + k.ID + ":" + base64.StdEncoding.EncodeToString(k.Key) + "\n"
	_, err = f.WriteString(content)
	if err == nil && runtime.GOOS != "windows" {
		err = f.Chmod(0o600) // whatever the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("seal: writing master key file: %w", err)
	}
	return []MasterKey{k}, nil
}

// LoadMasterKeys returns the master keys of the environment variable
// PARLEY_MASTER_KEY (its value is env) when it is set, else those of the
// key file at path when path is not empty and the file exists, else nil
// and no error (no master key configured).
func LoadMasterKeys(env, path string) ([]MasterKey, error) {
	if strings.TrimSpace(env) != "" {
		keys, err := parseMasterKeys(env)
		if err != nil {
			return nil, fmt.Errorf("seal: PARLEY_MASTER_KEY: %w", err)
		}
		return keys, nil
	}
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return LoadKeyFile(path)
}
