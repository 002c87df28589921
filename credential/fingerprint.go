package credential

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// processKey is the fingerprint key used when the config names none. It is
// drawn once per process so that fingerprints stay comparable across config
// reloads of the same gateway.
var processKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("credential: drawing fingerprint key: %v", err))
	}
	return k
})

// Fingerprinter computes keyed fingerprints of credentials: HMAC-SHA256 over
// the scheme and the secret, truncated to 128 bits and hex-encoded. Without
// the key a fingerprint reveals nothing of the credential.
type Fingerprinter struct {
	pool sync.Pool
}

// NewFingerprinter returns a Fingerprinter keyed with key, or with a random
// per-process key when key is empty.
func NewFingerprinter(key []byte) *Fingerprinter {
	if len(key) == 0 {
		key = processKey()
	}
	k := append([]byte(nil), key...)
	return &Fingerprinter{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

// Key returns a keyed hash over parts (length-prefixed, so that part
// boundaries cannot shift), for cache keys that must not hold secrets.
func (f *Fingerprinter) Key(parts ...string) string {
	h := f.pool.Get().(hash.Hash)
	h.Reset()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	f.pool.Put(h)
	return hex.EncodeToString(out)
}

// Fingerprint returns the fingerprint of c.
func (f *Fingerprinter) Fingerprint(c Credential) string {
	h := f.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(c.Scheme))
	h.Write([]byte{0})
	h.Write([]byte(c.secret))
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	f.pool.Put(h)
	return hex.EncodeToString(out[:16])
}
