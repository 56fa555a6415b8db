package stage

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// AgeKey is what makes an age encryption reproducible: the header (with
// the recipient stanzas wrapping the file key) and payload nonce that open
// the object, and the file key itself. filippo.io/age picks both at random
// inside Encrypt and never hands out the file key, so that a rerun would
// write other bytes and no part of an interrupted upload could be kept;
// with an AgeKey kept from the first run, the encrypted object comes out
// byte for byte the same. The file key decrypts the object: it must stay
// as secret as the identities (bss3put keeps it only in a private local
// record, never in the store).
type AgeKey struct {
	// Header is the age header and the 16-byte payload nonce.
	Header  []byte
	FileKey []byte
}

const (
	ageFileKeySize = 16
	ageNonceSize   = 16
	ageChunkSize   = 64 << 10
	// ageHeaderMax bounds a kept header: one stanza per recipient, each a
	// few hundred bytes (post-quantum ones about 1.5 KiB).
	ageHeaderMax = 256 << 10
	ageMagic     = "age-encryption.org/v1\n"
)

// keyCatcher is a recipient that hands the file key age.Encrypt chose to
// the caller: the one public way to learn it.
type keyCatcher struct {
	age.Recipient
	key *[]byte
}

func (c keyCatcher) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	*c.key = bytes.Clone(fileKey)
	return c.Recipient.Wrap(fileKey)
}

// WrapWithLabels keeps the labels of a recipient that has them, which age
// checks across recipients (post-quantum ones mix with no others).
func (c keyCatcher) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	*c.key = bytes.Clone(fileKey)
	if l, ok := c.Recipient.(age.RecipientWithLabels); ok {
		return l.WrapWithLabels(fileKey)
	}
	s, err := c.Recipient.Wrap(fileKey)
	return s, nil, err
}

// NewAgeKey makes a fresh header and file key for recipients, as
// age.Encrypt does: the header and nonce are age.Encrypt's own output.
func NewAgeKey(recipients []age.Recipient) (AgeKey, error) {
	if len(recipients) == 0 {
		return AgeKey{}, errors.New("age: no recipients")
	}
	var key []byte
	rs := append([]age.Recipient{keyCatcher{recipients[0], &key}}, recipients[1:]...)
	var hdr bytes.Buffer
	// The writer it returns is never written: only the header and the
	// nonce, written before it returns, are wanted.
	if _, err := age.Encrypt(&hdr, rs...); err != nil {
		return AgeKey{}, fmt.Errorf("age: %w", err)
	}
	k := AgeKey{Header: hdr.Bytes(), FileKey: key}
	if err := k.check(); err != nil {
		return AgeKey{}, err
	}
	return k, nil
}

// check refuses a key that cannot be age's: a kept record is read back.
func (k AgeKey) check() error {
	if len(k.FileKey) != ageFileKeySize || len(k.Header) > ageHeaderMax ||
		len(k.Header) < len(ageMagic)+ageNonceSize || !bytes.HasPrefix(k.Header, []byte(ageMagic)) ||
		!bytes.Contains(k.Header, []byte("\n--- ")) {
		return errors.New("age: not a valid age header and file key")
	}
	return nil
}

// payloadKey is HKDF-SHA256 of the file key, salted with the nonce, for
// "payload" (age's key schedule).
func (k AgeKey) payloadKey() ([]byte, error) {
	nonce := k.Header[len(k.Header)-ageNonceSize:]
	return hkdf.Key(sha256.New, k.FileKey, nonce, "payload", chacha20poly1305.KeySize)
}

// ageWriter writes an age file: the header and nonce, then the payload
// in 64 KiB chunks, each sealed with ChaCha20-Poly1305 under a nonce of
// the chunk's 11-byte big-endian counter and a last-chunk flag byte. A
// full chunk is sealed only once more data comes, since the last chunk
// (flagged) may be full but not empty unless the payload is.
type ageWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte // not yet written
	buf     []byte // plaintext of the chunk being filled
	out     []byte
	counter uint64
	err     error
}

func newAgeWriter(w io.Writer, k AgeKey) (*ageWriter, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	pk, err := k.payloadKey()
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	aead, err := chacha20poly1305.New(pk)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return &ageWriter{w: w, aead: aead, header: k.Header,
		buf: make([]byte, 0, ageChunkSize), out: make([]byte, 0, ageChunkSize+chacha20poly1305.Overhead)}, nil
}

func (a *ageWriter) Write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	n := 0
	for len(p) > 0 {
		if len(a.buf) == ageChunkSize {
			if err := a.seal(false); err != nil {
				return n, err
			}
		}
		c := copy(a.buf[len(a.buf):ageChunkSize], p)
		a.buf = a.buf[:len(a.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (a *ageWriter) seal(last bool) error {
	if a.header != nil {
		if _, err := a.w.Write(a.header); err != nil {
			a.err = err
			return err
		}
		a.header = nil
	}
	var nonce [chacha20poly1305.NonceSize]byte
	for i, c := 10, a.counter; i >= 0; i, c = i-1, c>>8 {
		nonce[i] = byte(c)
	}
	if last {
		nonce[11] = 1
	}
	a.out = a.aead.Seal(a.out[:0], nonce[:], a.buf, nil)
	a.buf = a.buf[:0]
	a.counter++
	if _, err := a.w.Write(a.out); err != nil {
		a.err = err
		return err
	}
	return nil
}

// Close seals the last chunk; it does not close the writer underneath.
func (a *ageWriter) Close() error {
	if a.err != nil {
		return a.err
	}
	if err := a.seal(true); err != nil {
		return err
	}
	a.err = errors.New("age: write after close")
	return nil
}

// RecipientsID identifies a set of recipients, so that an AgeKey kept for
// one set is never reused for another (its header wraps the file key to
// the first set only). "" when a recipient has no text form: such a key
// is never reused.
func RecipientsID(rs []age.Recipient) string {
	h := sha256.New()
	for _, r := range rs {
		s, ok := r.(fmt.Stringer)
		if !ok {
			return ""
		}
		fmt.Fprintf(h, "%s\n", s.String())
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
