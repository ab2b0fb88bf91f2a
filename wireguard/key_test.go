package wireguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "wireguard.key")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != k1.String() {
		t.Errorf("file holds %q, want the key in base64", b)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || k2 != k1 {
		t.Fatalf("restart: key changed=%v created=%v err=%v", k2 != k1, created, err)
	}
	if pub := k1.PublicKey(); pub == k1 || pub == (Key{}) {
		t.Errorf("public key %s", pub)
	}
	if p, err := ParseKey(k1.PublicKey().String()); err != nil || p != k1.PublicKey() {
		t.Errorf("public key export/parse: %v", err)
	}
	k3, err := ReplaceKey(path)
	if err != nil || k3 == k1 {
		t.Fatalf("replace: same=%v err=%v", k3 == k1, err)
	}
	if k4, _, err := LoadOrCreateKey(path); err != nil || k4 != k3 {
		t.Fatalf("after replace: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced key file mode %#o", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("leftover files beside the key: %v", ents)
	}
}

func TestLoadKeyRefusesBadFiles(t *testing.T) {
	good, _, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"world readable", good.String(), 0o644, "lets others read"},
		{"group readable", good.String(), 0o640, "lets others read"},
		{"garbage", "not a key", 0o600, "wireguard key"},
		{"empty", "", 0o600, "wireguard key file"},
		{"zero key", Key{}.String(), 0o600, "all zero"},
		{"two keys", good.String() + "\n" + good.String(), 0o600, "wireguard key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Errorf("a refused key file was changed")
			}
		})
	}
}

// FuzzParseKey: public keys arrive by gossip. ParseKey must never panic, and what it accepts
// must be exactly the 32 bytes it prints back.
func FuzzParseKey(f *testing.F) {
	k, _ := GeneratePrivateKey()
	f.Add(k.String())
	f.Add(k.PublicKey().String())
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if k == (Key{}) {
			t.Fatalf("ParseKey(%q) accepted the zero key", s)
		}
		if back, err := ParseKey(k.String()); err != nil || back != k {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}
