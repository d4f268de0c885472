package slots

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"

	"golang.org/x/crypto/bcrypt"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// streamKeyBytes is the stream key's entropy: 256 bits, so a SHA-256 of it
// (no salt, no stretching) is as strong as the key and can be an index key.
const streamKeyBytes = 32

// newStreamKey returns a fresh stream key (43 URL-safe base64 characters) and
// its hex SHA-256.
func newStreamKey() (secret.String, string) {
	b := make([]byte, streamKeyBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	key := base64.RawURLEncoding.EncodeToString(b)
	return secret.String(key), hashStreamKey(key)
}

func hashStreamKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// idEncoding is lower-case base32 without padding: only a-z and 2-7, so every
// id is valid for keys.ParseSlotID and safe in URLs.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random 128-bit slot id (26 characters).
func newID() keys.SlotID {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return keys.SlotID(idEncoding.EncodeToString(b))
}

// Password limits: 8 bytes is the floor of the issue; 72 bytes is bcrypt's
// input limit (x/crypto refuses longer passwords rather than truncate them).
const (
	minPasswordLen = 8
	maxPasswordLen = 72
)

func hashPassword(pw string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	return string(h), err
}

// checkPassword compares in constant time (bcrypt does).
func checkPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// dummyHash is compared against for unknown usernames so that they cost as
// much time as known ones. Its password is random and unknown.
var dummyHash = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h, _ := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(b)), bcrypt.DefaultCost)
	return string(h)
}()
