package config

import (
	"github.com/ovsfabric/ovsfabric/fabric"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad tunnel", func(c *Config) { c.Tunnel = "ipip" }, "--tunnel"},
		{"bad datapath", func(c *Config) { c.Datapath = "dpdk" }, "--datapath"},
		{"flow tunnels", func(c *Config) { c.TunnelMode = "flow" }, ""},
		{"tunnel mode unset is per-peer", func(c *Config) { c.TunnelMode = "" }, ""},
		{"bad tunnel mode", func(c *Config) { c.TunnelMode = "mesh" }, "--tunnel-mode"},
		{"flow tunnels need the routed pipeline", func(c *Config) { c.TunnelMode, c.Pipeline = "flow", "l2" }, "--pipeline routed"},
		{"flow tunnels unused with wireguard, also in l2", func(c *Config) { c.TunnelMode, c.Pipeline, c.Encryption = "flow", "l2", "wireguard" }, ""},
		{"bad cidr", func(c *Config) { c.ClusterCIDR = "10.244.0.0" }, "--cluster-cidr"},
		{"prefix too short", func(c *Config) { c.SubnetPrefix = 16 }, "--subnet-prefix"},
		{"subnet outside", func(c *Config) { c.Subnet = "10.9.1.0/24" }, "outside"},
		{"subnet host bits", func(c *Config) { c.Subnet = "10.244.1.1/24" }, "network address"},
		{"bad ovsdb", func(c *Config) { c.OVSDB = "/var/run/db.sock" }, "--ovsdb"},
		{"long bridge", func(c *Config) { c.Bridge = "a-very-long-bridge" }, "--bridge"},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "host1" }, "--advertise-addr"},
		{"bad port", func(c *Config) { c.GossipPort = 70000 }, "--gossip-port"},
		{"missing key file", func(c *Config) { c.GossipKeyFile = "/nonexistent" }, "--gossip-key-file"},
		{"wireguard", func(c *Config) { c.Encryption = "wireguard" }, ""},
		{"bad encryption", func(c *Config) { c.Encryption = "ipsec" }, "--encryption"},
		{"bad wireguard port", func(c *Config) { c.Encryption, c.WireGuardPort = "wireguard", 0 }, "--wireguard-port"},
		{"wireguard port unused without encryption", func(c *Config) { c.WireGuardPort = 0 }, ""},
		{"wireguard interface is the gateway", func(c *Config) { c.Encryption, c.WireGuardInterface = "wireguard", "fabric0" }, "--wireguard-interface"},
		{"long wireguard interface", func(c *Config) { c.Encryption, c.WireGuardInterface = "wireguard", "wireguard-fabric0" }, "--wireguard-interface"},
		{"bad wireguard implementation", func(c *Config) { c.Encryption, c.WireGuardImplementation = "wireguard", "ebpf" }, "--wireguard-implementation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Name = "h1"
			tc.mod(&c)
			_, err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(good, []byte("name: h9\ntunnel: gre\njoin: [172.30.0.11, 172.30.0.12]\ndead-peer-grace: 5m\n"), 0o600)
	c := DefaultConfig()
	if err := c.LoadFile(good); err != nil {
		t.Fatal(err)
	}
	if c.Name != "h9" || c.Tunnel != "gre" || len(c.Join) != 2 || c.DeadPeerGrace != 5*time.Minute || c.Bridge != "br-int" {
		t.Errorf("loaded %+v", c)
	}
	for _, tc := range []struct{ text, want string }{
		{"tunle: gre\n", `config file BAD: line 1: unknown key "tunle" (did you mean "tunnel"?)`},
		{"name: h1\nzzzz: 1\n", `config file BAD: line 2: unknown key "zzzz"`},
		{"name: [\n", "config file BAD: yaml:"},
	} {
		bad := filepath.Join(dir, "bad.yaml")
		_ = os.WriteFile(bad, []byte(tc.text), 0o600)
		err := c.LoadFile(bad)
		if err == nil || !strings.HasPrefix(err.Error(), strings.ReplaceAll(tc.want, "BAD", bad)) || strings.Contains(err.Error(), "config.Config") {
			t.Errorf("LoadFile(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
	empty := filepath.Join(dir, "empty.yaml")
	_ = os.WriteFile(empty, nil, 0o600)
	if err := c.LoadFile(empty); err != nil {
		t.Errorf("empty file: %v", err)
	}
	key := filepath.Join(dir, "key")
	_ = os.WriteFile(key, []byte("000102030405060708090a0b0c0d0e0f\n"), 0o600)
	c = DefaultConfig()
	c.Name, c.GossipKeyFile = "h1", key
	if s, err := c.Validate(); err != nil || len(s.GossipKey) != 16 {
		t.Errorf("hex key: %v %d", err, len(s.GossipKey))
	}
}

func FuzzConfigYAML(f *testing.F) {
	for _, s := range []string{"name: h1\njoin: [10.0.0.1, 10.0.0.2]\ncluster-cidr: 10.244.0.0/16\n",
		"subnet: 10.244.3.0/24\nsubnet-prefix: 24\ntunnel: gre\n", "dead-peer-grace: 3m\nresync: 0s\n",
		"api-group: docker\novs-rundir: /run/ovs\n", "bogus: 1\n", "name: [1, 2]\n", "gossip-port: 99999\n", ": :\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := DefaultConfig()
		if err := c.LoadYAML(b); err != nil {
			return
		}
		c.GossipKeyFile = "" // never read a file the input names
		s, err := c.Validate()
		if err != nil {
			return
		}
		if !s.Cluster.IsValid() || s.GossipPort <= 0 || s.GossipPort > 65535 || s.Name == "" {
			t.Fatalf("validated a bad config: %+v", s)
		}
		if s.StaticSubnet.IsValid() && !s.Cluster.Contains(s.StaticSubnet.Addr()) {
			t.Fatalf("static subnet %s outside %s", s.StaticSubnet, s.Cluster)
		}
	})
}

// TestFlagsOverFile: defaults < file < flags given on the command line, field by field; a
// flag left at its default never hides the file's value.
func TestFlagsOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fabricd.yaml")
	_ = os.WriteFile(file, []byte("name: from-file\ntunnel: gre\njoin: [10.0.0.1]\nresync: 7s\nmasquerade: false\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		file string
		mod  func(*Config)
	}{
		{"defaults", nil, "", func(*Config) {}},
		{"flags only", []string{"--name", "f", "--join", " 10.0.0.5 , ,10.0.0.6", "--resync=2s", "--masquerade=false"}, "", func(c *Config) {
			c.Name, c.Join, c.Resync, c.Masquerade = "f", []string{"10.0.0.5", "10.0.0.6"}, 2*time.Second, false
		}},
		{"file only", nil, file, func(c *Config) {
			c.Name, c.Tunnel, c.Join, c.Resync, c.Masquerade = "from-file", "gre", []string{"10.0.0.1"}, 7*time.Second, false
		}},
		{"flags win", []string{"--tunnel", "vxlan", "--join", "10.0.0.9", "--masquerade", "--gossip-port", "8000"}, file, func(c *Config) {
			c.Name, c.Tunnel, c.Join, c.Resync, c.Masquerade, c.GossipPort = "from-file", "vxlan", []string{"10.0.0.9"}, 7*time.Second, true, 8000
		}},
		{"flag equal to the default still wins", []string{"--tunnel", "vxlan", "--resync", "5s"}, file, func(c *Config) {
			c.Name, c.Join, c.Masquerade = "from-file", []string{"10.0.0.1"}, false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			fs := pflag.NewFlagSet("fabricd", pflag.ContinueOnError)
			Bind(fs, &cfg)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := Resolve(fs, cfg, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultConfig()
			tc.mod(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestBindCoversEveryKey: every key of the file is a flag with help, and nothing else is.
func TestBindCoversEveryKey(t *testing.T) {
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("fabricd", pflag.ContinueOnError)
	Bind(fs, &cfg)
	n := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		n++
		if fl.Usage == "" {
			t.Errorf("--%s has no help", fl.Name)
		}
	})
	if keys := Keys(); n != len(keys) {
		t.Errorf("%d flags for %d keys %v", n, len(keys), keys)
	}
	for _, k := range Keys() {
		if fs.Lookup(k) == nil {
			t.Errorf("key %q has no flag", k)
		}
	}
}

// TestMTUEncryption: the one place the MTU is computed takes WireGuard's 60 bytes (IPv4)
// instead of the tunnel's.
func TestMTUEncryption(t *testing.T) {
	c := DefaultConfig()
	c.Name = "h1"
	c.Encryption = "wireguard"
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	s.UnderlayMTU = 1500
	if mtu, err := s.MTU(); err != nil || mtu != 1440 {
		t.Errorf("MTU with wireguard = %d, %v; want 1440", mtu, err)
	}
	s.EncryptionMode = fabric.EncryptionNone
	if mtu, err := s.MTU(); err != nil || mtu != 1450 {
		t.Errorf("MTU without encryption = %d, %v; want 1450", mtu, err)
	}
}
