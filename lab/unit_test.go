package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHostAddr(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		i    int
		want string // "" = error
	}{
		{"172.30.0.0/24", 1, "172.30.0.11/24"},
		{"172.30.0.0/24", 2, "172.30.0.12/24"},
		{"172.30.0.0/24", 243, "172.30.0.253/24"},
		{"172.30.0.0/24", 244, ""}, // .254 is the external node's
		{"172.30.0.0/24", 0, ""},
		{"172.30.0.99/24", 1, "172.30.0.11/24"}, // host bits ignored
		{"10.9.0.0/16", 300, "10.9.1.54/16"},
		{"192.168.5.16/28", 3, "192.168.5.29/28"},
		{"192.168.5.16/28", 4, ""},
		{"fd00:30::/64", 1, "fd00:30::b/64"},
		{"fd00:30::/64", 246, "fd00:30::100/64"},
	} {
		got, err := hostAddr(netip.MustParsePrefix(tc.cidr), tc.i)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("hostAddr(%s, %d) = %s, want an error", tc.cidr, tc.i, got)
		case tc.want != "" && (err != nil || got != netip.MustParsePrefix(tc.want)):
			t.Errorf("hostAddr(%s, %d) = %s, %v; want %s", tc.cidr, tc.i, got, err, tc.want)
		}
	}
}

func TestBridgeMAC(t *testing.T) {
	if got := bridgeMAC(netip.MustParseAddr("172.30.0.11")); got != "02:fa:ac:1e:00:0b" {
		t.Errorf("bridgeMAC = %s", got)
	}
	if got := bridgeMAC(netip.MustParseAddr("fd00::1:2")); got != "02:fa:00:01:00:02" {
		t.Errorf("bridgeMAC v6 = %s", got)
	}
}

func TestExternalAddr(t *testing.T) {
	for cidr, want := range map[string]string{
		"172.30.0.0/24":   "172.30.0.254/24",
		"10.9.0.0/16":     "10.9.255.254/16",
		"192.168.5.16/28": "192.168.5.30/28",
		"fd00:30::/64":    "fd00:30::ffff:ffff:ffff:fffe/64",
	} {
		if got := externalAddr(netip.MustParsePrefix(cidr)); got != netip.MustParsePrefix(want) {
			t.Errorf("externalAddr(%s) = %s, want %s", cidr, got, want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{Hosts: 3}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if checkName(cfg.Name) != nil || !filepath.IsAbs(cfg.Dir) || !strings.HasSuffix(cfg.Dir, filepath.Join(".lab", cfg.Name)) {
		t.Errorf("name %q dir %q", cfg.Name, cfg.Dir)
	}
	if cfg.UnderlayCIDR != netip.MustParsePrefix("172.30.0.0/24") || cfg.UnderlayMTU != 1500 || cfg.Logger == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	if want := map[bool]string{true: "system", false: "netdev"}[KernelDatapath()]; cfg.Datapath != want {
		t.Errorf("auto datapath = %s, want %s", cfg.Datapath, want)
	}
	for name, bad := range map[string]Config{
		"name with dash":  {Name: "a-b"},
		"upper-case name": {Name: "Lab"},
		"long name":       {Name: "abcdefghijklm"},
		"datapath":        {Datapath: "dpdk"},
		"mtu":             {UnderlayMTU: 500},
		"v6 mtu":          {UnderlayMTU: 1200, UnderlayCIDR: netip.MustParsePrefix("fd00::/64")},
		"too many hosts":  {Hosts: 5, UnderlayCIDR: netip.MustParsePrefix("10.0.0.0/28")},
		"long dir":        {Dir: "/tmp/" + strings.Repeat("d", 80)},
		"negative hosts":  {Hosts: -1},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// useRegistry points the registry at a temporary directory for the test.
func useRegistry(t *testing.T) {
	old := registryDir
	registryDir = t.TempDir()
	t.Cleanup(func() { registryDir = old })
}

func TestStateRoundTrip(t *testing.T) {
	useRegistry(t)
	dir := t.TempDir()
	l := &Lab{Name: "rt1", Dir: dir, Datapath: "netdev", MTU: 1400, Underlay: "ovsfab-rt1-u",
		UnderlayCIDR: netip.MustParsePrefix("172.30.0.0/24"), registered: true}
	l.st = state{Version: stateVersion, Name: "rt1", Dir: dir, Datapath: "netdev", Underlay: "172.30.0.0/24",
		MTU: 1400, NextHost: 2, Netns: []string{"ovsfab-rt1-u", "ovsfab-rt1-h1", "ovsfab-rt1-h2"}}
	for i := 1; i <= 2; i++ {
		a, _ := hostAddr(l.UnderlayCIDR, i)
		name := "h" + string(rune('0'+i))
		l.Hosts = append(l.Hosts, &Host{Name: name, NetNS: "ovsfab-rt1-" + name, Dir: filepath.Join(dir, name),
			UnderlayIP: a.Addr(), UnderlayPrefix: a, Datapath: "netdev", index: i, lab: l})
	}
	l.procs = []*Proc{{rec: procRecord{Name: "ovsdb-server", NetNS: "ovsfab-rt1-h1", PID: 4242, StartTime: 7, Argv: []string{"ovsdb-server"}, Daemon: true}}}
	if err := l.save(); err != nil {
		t.Fatal(err)
	}
	got, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "rt1" || got.Datapath != "netdev" || got.MTU != 1400 || got.Underlay != "ovsfab-rt1-u" || !got.registered {
		t.Errorf("lab: %+v", got)
	}
	if len(got.Hosts) != 2 || got.Host("h2") == nil || got.Host("h2").UnderlayPrefix != l.Hosts[1].UnderlayPrefix ||
		got.Host("h2").Dir != filepath.Join(dir, "h2") || got.Host("h2").lab != got {
		t.Errorf("hosts: %+v", got.Hosts)
	}
	if ps := got.Host("h1").Procs(); len(ps) != 1 || ps[0].PID() != 4242 || !ps[0].rec.Daemon || ps[0].Alive() {
		t.Errorf("procs: %+v", ps)
	}
	if !slices.Equal(got.NetNS(), l.st.Netns) {
		t.Errorf("netns %v, want %v", got.NetNS(), l.st.Netns)
	}
	byName, err := OpenName("rt1")
	if err != nil || byName.Dir != dir || len(byName.Hosts) != 2 {
		t.Errorf("OpenName: %v %+v", err, byName)
	}
}

// TestStateVersion0 reads a state file written before the version field existed.
func TestStateVersion0(t *testing.T) {
	old := `{"name":"demo","dir":"/x/.lab/demo","datapath":"netdev","underlay_cidr":"172.30.0.0/24","mtu":1500,
	"next_host":1,"netns":["ovsfab-demo-u","ovsfab-demo-h1"],
	"hosts":[{"name":"h1","netns":"ovsfab-demo-h1","dir":"/x/.lab/demo/h1","underlay_ip":"172.30.0.11","index":1}],
	"procs":[{"name":"fabricd","netns":"ovsfab-demo-h1","pid":99,"start_time":5,"log":"/x/f.log","argv":["/bin/fabricd"]}],
	"created_at":"2026-11-23T08:00:00Z"}`
	st, err := decodeState([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	l, err := fromState(st, "/x/.lab/demo")
	if err != nil || len(l.Hosts) != 1 || len(l.procs) != 1 || l.Hosts[0].UnderlayIP != netip.MustParseAddr("172.30.0.11") {
		t.Fatalf("%v %+v", err, l)
	}
	if _, err := decodeState([]byte(`{"version":99,"name":"x"}`)); err == nil {
		t.Error("state from a newer version accepted")
	}
	if _, err := decodeState([]byte(`{"name":"../etc"}`)); err == nil {
		t.Error("bad lab name accepted")
	}
}

func TestRegistry(t *testing.T) {
	useRegistry(t)
	st := &state{Version: stateVersion, Name: "reg1", Dir: "/tmp/a", Underlay: "172.30.0.0/24", OwnerPID: os.Getpid()}
	st.OwnerStart, _ = procStartTime(os.Getpid())
	b, _ := encodeState(st)
	if err := reserve("reg1", b); err != nil {
		t.Fatal(err)
	}
	if err := reserve("reg1", b); err == nil || !strings.Contains(err.Error(), "/tmp/a") {
		t.Errorf("second reservation: %v", err)
	}
	st2 := &state{Version: stateVersion, Name: "reg2", Dir: "/tmp/b", Underlay: "172.30.0.0/24", OwnerPID: 999999999, OwnerStart: 1}
	b2, _ := encodeState(st2)
	if err := reserve("reg2", b2); err != nil {
		t.Fatal(err)
	}
	labs, err := Labs()
	if err != nil {
		t.Fatal(err)
	}
	var regs []Info
	for _, i := range labs {
		if i.Registered {
			regs = append(regs, i)
		}
	}
	if len(regs) != 2 || regs[0].Name != "reg1" || !regs[0].OwnerAlive || regs[0].Orphaned() || regs[1].OwnerAlive || !regs[1].Orphaned() {
		t.Errorf("labs: %+v", regs)
	}
	if err := release("reg1", "/tmp/other"); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegistry("reg1"); err != nil {
		t.Error("release removed another directory's entry")
	}
	if err := release("reg1", "/tmp/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegistry("reg1"); err == nil {
		t.Error("entry not released")
	}
}

func TestProcIdentity(t *testing.T) {
	pid := os.Getpid()
	st, err := procStartTime(pid)
	if err != nil || st == 0 {
		t.Fatalf("procStartTime(self) = %d, %v", st, err)
	}
	self := procRecord{Name: "self", PID: pid, StartTime: st, Argv: []string{os.Args[0]}}
	if !isRecorded(self) {
		t.Error("own process not recognised")
	}
	reused := self
	reused.StartTime = st + 1
	if isRecorded(reused) {
		t.Error("a different start time taken for the same process")
	}
	other := self
	other.Argv = []string{"ovs-vswitchd"}
	if isRecorded(other) {
		t.Error("a different program taken for the recorded one")
	}
	if !cmdlineMatches(pid, os.Args[0], filepath.Base(os.Args[0])) || cmdlineMatches(pid, os.Args[0], "/no/such/dir") {
		t.Error("cmdlineMatches mustContain")
	}
	if (&Proc{rec: procRecord{PID: 0, Argv: []string{"x"}}}).Alive() {
		t.Error("pid 0 alive")
	}
}

func TestNetNSPrefixNoOverlap(t *testing.T) {
	// Lab names have no "-", so no lab's prefix is a prefix of another lab's names.
	if strings.HasPrefix(NetNSPrefix("ab")+"h1", NetNSPrefix("abc")) || strings.HasPrefix(NetNSPrefix("abc")+"h1", NetNSPrefix("ab")) {
		t.Error("prefixes overlap")
	}
}
