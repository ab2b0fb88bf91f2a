package wireguard

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Key is a WireGuard (Curve25519) key, private or public. Its String is base64, as `wg` shows it.
type Key = wgtypes.Key

// ParseKey decodes a base64 key (44 characters, as `wg genkey` / `wg pubkey` print it), e.g. a
// peer's public key from gossip.
func ParseKey(s string) (Key, error) {
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key: %w", err)
	}
	if k == (Key{}) {
		return Key{}, errors.New("wireguard key: all zero")
	}
	return k, nil
}

// LoadOrCreateKey returns the private key stored at path, creating it (a new random key, file
// mode 0600, written atomically) when the file does not exist; created says which. The file
// holds the key in base64 on one line, the format of `wg genkey`. A key file that others than
// its owner may read is refused rather than trusted (a leaked key lets anyone impersonate the
// host), as is a file that does not hold exactly one valid key.
func LoadOrCreateKey(path string) (key Key, created bool, err error) {
	key, err = loadKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, false, err
	}
	key, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return Key{}, false, fmt.Errorf("wireguard key: generate: %w", err)
	}
	if err := writeKey(path, key); err != nil {
		return Key{}, false, err
	}
	// Another process may have won a race to create the file: whatever is there now is the key.
	key, err = loadKey(path)
	return key, err == nil, err
}

func loadKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Key{}, fmt.Errorf("wireguard key file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("wireguard key file %s: mode %#o lets others read it; want 0600 (chmod 600 it, or remove it to make a new key)", path, perm)
	}
	b := make([]byte, 128)
	n, err := f.Read(b)
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key file %s: %w", path, err)
	}
	key, err := ParseKey(string(bytes.TrimSpace(b[:n])))
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key file %s: %w", path, err)
	}
	return key, nil
}

// ReplaceKey writes a new random private key to path, atomically replacing the one there (key
// rotation), and returns it. The old key is gone once it returns: apply the new one to the
// Device and announce its public key before relying on it.
func ReplaceKey(path string) (Key, error) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key: generate: %w", err)
	}
	tmp, err := writeTemp(path, key)
	if err != nil {
		return Key{}, err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return Key{}, fmt.Errorf("wireguard key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return key, nil
}

// writeKey creates path with the key, atomically and never over an existing file.
func writeKey(path string, key Key) error {
	tmp, err := writeTemp(path, key)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Link fails when path exists: a concurrent creator's key is kept, never overwritten.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("wireguard key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes key to a new temporary file (mode 0600, synced) beside path and returns its name.
func writeTemp(path string, key Key) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("wireguard key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".wgkey-*")
	if err != nil {
		return "", fmt.Errorf("wireguard key file: %w", err)
	}
	fail := func(err error) (string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("wireguard key file: %w", err)
	}
	// CreateTemp makes the file 0600 already; Chmod guards against a umask-less surprise.
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.WriteString(key.String() + "\n"); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("wireguard key file: %w", err)
	}
	return tmp.Name(), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// GeneratePrivateKey returns a new random private key (for tests and tools; fabricd uses
// LoadOrCreateKey).
func GeneratePrivateKey() (Key, error) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return Key{}, fmt.Errorf("wireguard key: generate: %w", err)
	}
	return k, nil
}
