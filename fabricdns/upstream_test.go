package fabricdns

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseResolvConf(t *testing.T) {
	in := `# generated
search example.com
nameserver 192.0.2.53
nameserver   2001:db8::53 # trailing comment
nameserver fe80::1%eth0
nameserver 192.0.2.53
nameserver not-an-address
options ndots:2
`
	got, err := parseResolvConf(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("fe80::1%eth0")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestResolveUpstreams(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stub := write("stub.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
	plain := write("plain.conf", "nameserver 192.0.2.1\nnameserver 192.0.2.2\n")
	resolved := write("resolved.conf", "nameserver 198.51.100.1\nnameserver 198.51.100.2\n")
	onlyLoopback := write("loop.conf", "nameserver 127.0.0.1\n")
	for _, tt := range []struct {
		name, conf, stubs string
		want              string
	}{
		{"plain file", plain, resolved, "[192.0.2.1 192.0.2.2]"},
		{"stub with resolved's upstreams", stub, resolved, "[198.51.100.1 198.51.100.2]"},
		{"stub without resolved's file: the stub itself", stub, filepath.Join(dir, "missing"), "[127.0.0.53]"},
		{"stub whose upstream file lists only loopback", stub, onlyLoopback, "[127.0.0.53]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveUpstreams(tt.conf, tt.stubs)
			if err != nil {
				t.Fatal(err)
			}
			if s := fmtAddrs(got); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
	if _, err := resolveUpstreams(filepath.Join(dir, "missing"), resolved); err == nil {
		t.Error("a missing resolv.conf gave no error")
	}
}

func fmtAddrs(as []netip.Addr) string {
	var b strings.Builder
	b.WriteString("[")
	for i, a := range as {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(a.String())
	}
	b.WriteString("]")
	return b.String()
}

// TestUpstreamsReload: a rewritten resolv.conf is picked up without a restart.
func TestUpstreamsReload(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &upstreams{resolvConf: conf, stubs: filepath.Join(dir, "none"), log: slog.New(slog.DiscardHandler)}
	got, err := u.get()
	if err != nil || len(got) != 1 || got[0].String() != "192.0.2.1:53" {
		t.Fatalf("get() = %v, %v; want [192.0.2.1:53]", got, err)
	}
	tmp := conf + ".new"
	if err := os.WriteFile(tmp, []byte("nameserver 192.0.2.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	u.checked = u.checked.Add(-upstreamRecheck) // as if the recheck interval had passed
	u.mu.Unlock()
	got, err = u.get()
	if err != nil || len(got) != 1 || got[0].String() != "192.0.2.7:53" {
		t.Fatalf("after the rewrite get() = %v, %v; want [192.0.2.7:53]", got, err)
	}
	if err := os.WriteFile(conf, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	u.checked = u.checked.Add(-upstreamRecheck)
	u.mu.Unlock()
	if _, err := u.get(); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("empty resolv.conf: err %v, want 'no nameserver'", err)
	}
}
