package e2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// cniKit is the CNI plugin (as "ovsfabric", its type) and cnitool v1.3.1, built for a test,
// and the network configuration directory of each lab host.
type cniKit struct {
	bin  string            // CNI_PATH: ovsfabric and cnitool
	conf map[string]string // host name → NETCONFPATH
}

// buildCNIKit builds the plugin and cnitool (from the module cache: the version go.mod pins).
func buildCNIKit(t *testing.T, ctx context.Context) *cniKit {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	k := &cniKit{bin: t.TempDir(), conf: map[string]string{}}
	for _, b := range [][2]string{{"ovsfabric", "./cmd/ovsfabric-cni"}, {"cnitool", "github.com/containernetworking/cni/cnitool"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(k.bin, b[0]), b[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b[1], err, out)
		}
	}
	return k
}

// writeConf writes network configuration list name (cniVersion ver, fabric network network)
// for host n.
func (k *cniKit) writeConf(t *testing.T, n *fabriclab.Node, name, ver, network string) {
	t.Helper()
	dir, ok := k.conf[n.Host.Name]
	if !ok {
		dir = t.TempDir()
		k.conf[n.Host.Name] = dir
	}
	conf := map[string]any{
		"cniVersion": ver, "name": name,
		"plugins": []map[string]any{{
			"type": "ovsfabric", "network": network, "socket": n.Socket,
			"capabilities": map[string]bool{"ips": true, "mac": true, "portMappings": true, "aliases": true},
		}},
	}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(dir, name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cnitool runs cnitool CMD NAME NETNS on host n's configurations; env adds CNI_ARGS,
// CAP_ARGS, CNI_IFNAME.
func (k *cniKit) cnitool(ctx context.Context, n *fabriclab.Node, env []string, cmd, name, netns string) (string, error) {
	c := exec.CommandContext(ctx, filepath.Join(k.bin, "cnitool"), cmd, name, netns)
	c.Env = append(os.Environ(), append([]string{"CNI_PATH=" + k.bin, "NETCONFPATH=" + k.conf[n.Host.Name]}, env...)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("cnitool %s %s %s: %v: %s%s", cmd, name, netns, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// plugin runs the plugin as a runtime does: CNI_* in the environment, the configuration on
// stdin. It returns stdout and whether the plugin exited 0.
func (k *cniKit) plugin(ctx context.Context, env map[string]string, conf string) (string, bool) {
	c := exec.CommandContext(ctx, filepath.Join(k.bin, "ovsfabric"))
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_PATH=" + k.bin}
	for key, v := range env {
		c.Env = append(c.Env, key+"="+v)
	}
	c.Stdin = strings.NewReader(conf)
	out, err := c.Output()
	return string(out), err == nil
}

// cnitoolID is the container ID cnitool derives from a netns path.
func cnitoolID(netns string) string {
	return fmt.Sprintf("cnitool-%x", sha512Sum(netns)[:10])
}

// TestCNI drives the CNI plugin on a 3-host fabric with cnitool and as a runtime would:
// ADD on every host and the ping matrix between them, a published port and aliases, CHECK
// (and what it reports when the container's address is gone), the results of spec versions
// 0.4.0, 1.0.0 and 1.1.0, the error table (each leaving the host as it was), GC keeping only
// valid CNI attachments, STATUS, and DEL (idempotent, also after the netns is gone).
func TestCNI(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, true)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	k := buildCNIKit(t, ctx)
	name := "ovsfab-e2e-" + l.Name // unique, for libcni's result cache
	t.Cleanup(func() {
		paths, _ := filepath.Glob("/var/lib/cni/results/" + name + "*")
		for _, p := range paths {
			os.Remove(p)
		}
	})
	// A second network, blue, made on h1; every host serves a slice of it.
	if _, err := f.Node("h1").Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatalf("create blue: %v", err)
	}
	blueSlices := map[string]netip.Prefix{}
	for _, n := range f.Nodes() {
		waitNetworks(t, ctx, n, []string{"blue", "default"})
		ns, err := n.Client().Networks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ns {
			if x.Name == "blue" {
				blueSlices[n.Host.Name] = netip.MustParsePrefix(x.Slice)
			}
		}
	}
	subnets := map[string]netip.Prefix{}
	for _, n := range f.Nodes() {
		for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
			k.writeConf(t, n, name+"-"+v, v, "default")
		}
		k.writeConf(t, n, name+"-blue", "1.1.0", "blue")
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		subnets[n.Host.Name] = netip.MustParsePrefix(st.Subnet)
	}
	conf11 := name + "-1.1.0"

	// ADD one container per host; the one on h1 with a fixed address, a published port and an
	// alias.
	var cs []*fabriclab.Container
	results := map[string]*current.Result{}
	for _, n := range f.Nodes() {
		path, err := l.AddNetNS(ctx, n.Host, "cni")
		if err != nil {
			t.Fatal(err)
		}
		var env []string
		if n.Host.Name == "h1" {
			fixed := subnets["h1"].Addr().Next().Next().Next().Next().Next().String() // .5
			env = []string{"CNI_ARGS=IP=" + fixed,
				`CAP_ARGS={"mac":"02:fa:b0:00:00:05","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"aliases":{"` + conf11 + `":["web"]}}`}
		}
		out, err := k.cnitool(ctx, n, env, "add", conf11, path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := current.NewResult([]byte(out))
		if err != nil {
			t.Fatalf("ADD result %s: %v", out, err)
		}
		r := res.(*current.Result)
		results[n.Host.Name] = r
		if len(r.Interfaces) != 2 || r.Interfaces[1].Sandbox != path || r.Interfaces[1].Name != "eth0" || r.Interfaces[0].Sandbox != "" ||
			r.Interfaces[1].Mtu == 0 || len(r.IPs) != 1 || len(r.Routes) != 1 || len(r.DNS.Nameservers) != 1 || r.DNS.Search[0] != "default" {
			t.Errorf("%s ADD result: %s", n.Host.Name, out)
			continue
		}
		addr, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
		if !subnets[n.Host.Name].Contains(addr) || r.IPs[0].Gateway.String() != r.DNS.Nameservers[0] {
			t.Errorf("%s ADD result: address %s gateway %s not of the host's slice %s", n.Host.Name, addr, r.IPs[0].Gateway, subnets[n.Host.Name])
		}
		cs = append(cs, &fabriclab.Container{Name: "cni-" + n.Host.Name, Node: n, NetNS: filepath.Base(path), Path: path, IP: addr.String()})
	}
	if t.Failed() {
		t.FailNow()
	}
	if got, want := cs[0].IP, subnets["h1"].Addr().Next().Next().Next().Next().Next().String(); got != want {
		t.Errorf("CNI_ARGS IP= not honoured: %s, want %s", got, want)
	}
	if got := results["h1"].Interfaces[1].Mac; got != "02:fa:b0:00:00:05" {
		t.Errorf("mac capability not honoured: %s", got)
	}
	t.Run("ping matrix", func(t *testing.T) { assertMatrix(t, ctx, cs, 6) })

	t.Run("published port and aliases", func(t *testing.T) {
		h1 := l.Hosts[0]
		port := results["h1"].Interfaces[0].Name
		if out, err := h1.Vsctl(ctx, "get", "port", port, "external_ids:ovsfabric-aliases"); err != nil || strings.TrimSpace(out) != `web` {
			t.Errorf("aliases on port %s: %q %v", port, out, err)
		}
		srv, err := l.StartIn(ctx, cs[0].NetNS, "iperf3-cni", []string{"iperf3", "-s", "--forceflush", "-p", "80"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop(5 * time.Second)
		if out, err := retryRun(ctx, l.External, "iperf3", "--connect-timeout", "2000", "-c", h1.UnderlayIP.String(), "-p", "8080", "-t", "1"); err != nil {
			t.Errorf("published port %s:8080: %v\n%s", h1.UnderlayIP, err, out)
		}
	})

	t.Run("CHECK", func(t *testing.T) {
		for i, n := range f.Nodes() {
			if _, err := k.cnitool(ctx, n, nil, "check", conf11, cs[i].Path); err != nil {
				t.Errorf("%s: %v", n.Host.Name, err)
			}
		}
		c := cs[2]
		cidr := c.IP + "/" + fmt.Sprint(subnets[c.Node.Host.Name].Bits())
		if out, err := lab.RunIn(ctx, c.NetNS, "ip", "addr", "del", cidr, "dev", "eth0"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		_, err := k.cnitool(ctx, c.Node, nil, "check", conf11, c.Path)
		if err == nil || !strings.Contains(err.Error(), "lacks its address "+cidr) {
			t.Errorf("CHECK of a container without its address: %v", err)
		}
		// Put it back as it was (the default route went with the address).
		if out, err := lab.RunIn(ctx, c.NetNS, "ip", "addr", "add", cidr, "dev", "eth0"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		gw := results[c.Node.Host.Name].IPs[0].Gateway.String()
		_, _ = lab.RunIn(ctx, c.NetNS, "ip", "route", "replace", "default", "via", gw, "dev", "eth0")
		if _, err := k.cnitool(ctx, c.Node, nil, "check", conf11, c.Path); err != nil {
			t.Errorf("CHECK after repair: %v", err)
		}
	})

	t.Run("spec versions", func(t *testing.T) {
		n := f.Node("h2")
		for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
			path, err := l.AddNetNS(ctx, n.Host, "v"+strings.ReplaceAll(v, ".", ""))
			if err != nil {
				t.Fatal(err)
			}
			out, err := k.cnitool(ctx, n, nil, "add", name+"-"+v, path)
			if err != nil {
				t.Errorf("%s: %v", v, err)
				continue
			}
			var head struct {
				CNIVersion string `json:"cniVersion"`
			}
			_ = json.Unmarshal([]byte(out), &head)
			res, err := version.NewResult(v, []byte(out))
			if err != nil || head.CNIVersion != v {
				t.Errorf("%s result (version %q): %v\n%s", v, head.CNIVersion, err, out)
				continue
			}
			cur, err := current.NewResultFromResult(res)
			if err != nil || len(cur.IPs) != 1 || len(cur.Interfaces) != 2 || cur.Interfaces[1].Sandbox != path {
				t.Errorf("%s result: %v\n%s", v, err, out)
			}
			if v == "1.1.0" && cur.Interfaces[1].Mtu == 0 {
				t.Errorf("1.1.0 result without MTU: %s", out)
			}
			if _, err := k.cnitool(ctx, n, nil, "check", name+"-"+v, path); err != nil {
				t.Errorf("%s: %v", v, err)
			}
			if _, err := k.cnitool(ctx, n, nil, "del", name+"-"+v, path); err != nil {
				t.Errorf("%s: %v", v, err)
			}
			if err := l.DeleteNetNS(ctx, path); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("network blue", func(t *testing.T) { testCNIBlue(t, ctx, f, k, name+"-blue", blueSlices, cs) })

	t.Run("errors", func(t *testing.T) {
		n := f.Node("h3")
		path, err := l.AddNetNS(ctx, n.Host, "err")
		if err != nil {
			t.Fatal(err)
		}
		conf := func(ver, network, socket string) string {
			return fmt.Sprintf(`{"cniVersion":%q,"name":"%s-err","type":"ovsfabric","network":%q,"socket":%q}`, ver, name, network, socket)
		}
		good := conf("1.1.0", "default", n.Socket)
		env := func(cmd, netns, args string) map[string]string {
			return map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "err-1", "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_ARGS": args}
		}
		gone := filepath.Join(t.TempDir(), "fabricd.sock")
		for _, tc := range []struct {
			name string
			env  map[string]string
			conf string
			code uint
			msg  string
		}{
			{"malformed config", env("ADD", path, ""), `{"cniVersion":"1.1.0","name":`, types.ErrDecodingFailure, ""},
			{"unsupported version", env("ADD", path, ""), conf("0.3.1", "default", n.Socket), types.ErrIncompatibleCNIVersion, ""},
			{"unknown network", env("ADD", path, ""), conf("1.1.0", "nosuch", n.Socket), api.CNIErrUnknownNetwork, `unknown network "nosuch"`},
			{"IP outside the host's slice", env("ADD", path, "IP="+subnets["h1"].Addr().Next().Next().String()), good, api.CNIErrAddress, "outside this host's slice"},
			{"IP of another host's slice of blue", env("ADD", path, "IP="+blueSlices["h1"].Addr().Next().Next().String()), conf("1.1.0", "blue", n.Socket), api.CNIErrAddress,
				fmt.Sprintf("outside this host's slice %s of network blue", blueSlices["h3"])},
			{"IP of default's slice on blue", env("ADD", path, "IP="+subnets["h3"].Addr().Next().Next().String()), conf("1.1.0", "blue", n.Socket), api.CNIErrAddress,
				fmt.Sprintf("outside this host's slice %s of network blue", blueSlices["h3"])},
			{"CHECK on an unknown network", env("CHECK", path, ""), conf("1.1.0", "nosuch", n.Socket), api.CNIErrUnknownNetwork, `unknown network "nosuch"`},
			{"STATUS of an unknown network", env("STATUS", "", ""), conf("1.1.0", "nosuch", n.Socket), types.ErrPluginNotAvailable, `unknown network "nosuch"`},
			{"malformed CNI_ARGS", env("ADD", path, "IP=bogus"), good, api.CNIErrAddress, "not an IPv4 address"},
			{"missing netns", env("ADD", path+"-gone", ""), good, types.ErrUnknownContainer, "does not exist"},
			{"fabricd not running", env("ADD", path, ""), conf("1.1.0", "default", gone), types.ErrTryAgainLater, "fabricd is not running: nothing listens on " + gone},
			{"ADD twice", map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": cnitoolID(cs[2].Path), "CNI_NETNS": cs[2].Path, "CNI_IFNAME": "eth0"},
				strings.Replace(good, name+"-err", conf11, 1), api.CNIErrExists, "already attached"},
			{"STATUS without fabricd", env("STATUS", "", ""), conf("1.1.0", "default", gone), types.ErrPluginNotAvailable, gone},
			{"CHECK of nothing", env("CHECK", path, ""), good, api.CNIErrCheckFailed, "no endpoint"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before, err := fabriclab.HostSnapshot(ctx, n.Host)
				if err != nil {
					t.Fatal(err)
				}
				out, ok := k.plugin(ctx, tc.env, tc.conf)
				var e types.Error
				if ok || json.Unmarshal([]byte(out), &e) != nil || e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
					t.Errorf("exit 0: %v, stdout %s; want CNI error code %d with %q", ok, out, tc.code, tc.msg)
				}
				after, err := fabriclab.HostSnapshot(ctx, n.Host)
				if err != nil {
					t.Fatal(err)
				}
				if d := before.Diff(after); d != "" {
					t.Errorf("a failed %s changed the host:\n%s", tc.env["CNI_COMMAND"], d)
				}
			})
		}
		if out, ok := k.plugin(ctx, env("STATUS", "", ""), good); !ok {
			t.Errorf("STATUS of a ready fabricd: %s", out)
		}
		if out, ok := k.plugin(ctx, env("DEL", "", ""), good); !ok {
			t.Errorf("DEL of a key never added: %s", out)
		}
	})

	t.Run("GC keeps valid and non-CNI endpoints", func(t *testing.T) {
		n := f.Node("h1")
		extra, err := l.AddNetNS(ctx, n.Host, "extra")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.cnitool(ctx, n, nil, "add", conf11, extra); err != nil {
			t.Fatal(err)
		}
		plain, err := f.AddContainer(ctx, n, "plain", api.AttachRequest{})
		if err != nil {
			t.Fatal(err)
		}
		gc := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"ovsfabric","network":"default","socket":%q,"cni.dev/valid-attachments":[{"containerID":%q,"ifname":"eth0"}]}`,
			conf11, n.Socket, cnitoolID(cs[0].Path))
		if out, ok := k.plugin(ctx, map[string]string{"CNI_COMMAND": "GC"}, gc); !ok {
			t.Fatalf("GC: %s", out)
		}
		as, err := n.Client().Attachments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, a := range as {
			left = append(left, a.NetNS)
		}
		if len(as) != 2 || !strings.Contains(strings.Join(left, " "), cs[0].Path) || !strings.Contains(strings.Join(left, " "), plain.Path) {
			t.Errorf("after GC h1 has %v, want %s and %s", left, cs[0].Path, plain.Path)
		}
		if _, err := k.cnitool(ctx, n, nil, "del", conf11, extra); err != nil {
			t.Errorf("DEL after GC removed it: %v", err)
		}
		// cnitool's GC lists no valid attachment: every CNI endpoint of h2 goes, DEL still works.
		n2 := f.Node("h2")
		if _, err := k.cnitool(ctx, n2, nil, "gc", conf11, cs[1].Path); err != nil {
			t.Fatal(err)
		}
		if as, _ := n2.Client().Attachments(ctx); len(as) != 0 {
			t.Errorf("after cnitool gc h2 has %+v", as)
		}
		if _, err := k.cnitool(ctx, n2, nil, "del", conf11, cs[1].Path); err != nil {
			t.Errorf("DEL after GC: %v", err)
		}
		if _, err := n.Client().Detach(ctx, api.DetachRequest{Target: plain.Path}); err != nil {
			t.Error(err)
		}
	})

	t.Run("STATUS and DEL", func(t *testing.T) {
		for _, n := range f.Nodes() {
			if _, err := k.cnitool(ctx, n, nil, "status", conf11, "/"); err != nil {
				t.Errorf("%s: %v", n.Host.Name, err)
			}
		}
		// DEL after the container's netns is gone, then once more.
		c := cs[2]
		if err := l.DeleteNetNS(ctx, c.Path); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, err := k.cnitool(ctx, c.Node, nil, "del", conf11, c.Path); err != nil {
				t.Errorf("DEL %d without netns: %v", i+1, err)
			}
		}
		for i := 0; i < 2; i++ {
			if _, err := k.cnitool(ctx, cs[0].Node, nil, "del", conf11, cs[0].Path); err != nil {
				t.Errorf("DEL %d: %v", i+1, err)
			}
		}
		for _, n := range f.Nodes() {
			as, err := n.Client().Attachments(ctx)
			if err != nil || len(as) != 0 {
				t.Errorf("%s after DEL: %+v %v", n.Host.Name, as, err)
			}
		}
		out, err := l.Hosts[0].Run(ctx, "nft", "list", "table", "ip", "ovsfabric")
		if err == nil && strings.Contains(out, "8080") {
			t.Errorf("published port left after DEL:\n%s", out)
		}
		// STATUS while fabricd is stopped names the socket.
		n := f.Node("h3")
		if err := n.Proc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		_, err = k.cnitool(ctx, n, nil, "status", conf11, "/")
		if err == nil || !strings.Contains(err.Error(), n.Socket) {
			t.Errorf("STATUS with fabricd stopped: %v", err)
		}
	})
}

func sha512Sum(s string) []byte {
	h := sha512.Sum512([]byte(s))
	return h[:]
}

// testCNIBlue drives the plugin on the network blue (configuration conf): ADD on every host
// (eth0: the container's first network, so the default route), and h1's default-network
// container cs[0] joining blue as net1 (its default route stays on eth0; net1 routes
// blue); the ping matrix on blue, blue isolated from default, names on blue through the
// nameserver the result gives; CHECK of each; DEL of each (twice) leaving cs[0] as it was.
func testCNIBlue(t *testing.T, ctx context.Context, f *fabriclab.Fabric, k *cniKit, conf string, blueSlices map[string]netip.Prefix, cs []*fabriclab.Container) {
	blue := netip.MustParsePrefix("10.50.0.0/16")
	type added struct {
		c      *fabriclab.Container
		ifname string
	}
	var adds []added
	check := func(host, out, ifname string, wantRoute netip.Prefix) (netip.Addr, *current.Result) {
		t.Helper()
		res, err := current.NewResult([]byte(out))
		if err != nil {
			t.Fatalf("%s ADD result %s: %v", host, out, err)
		}
		r := res.(*current.Result)
		gw := blueSlices[host].Addr().Next()
		if len(r.Interfaces) != 2 || r.Interfaces[1].Name != ifname || len(r.IPs) != 1 || len(r.Routes) != 1 {
			t.Fatalf("%s ADD result on blue: %s", host, out)
		}
		addr, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
		if !blueSlices[host].Contains(addr) || r.IPs[0].Gateway.String() != gw.String() {
			t.Errorf("%s ADD on blue: address %s gateway %s, want of this host's slice %s of blue", host, addr, r.IPs[0].Gateway, blueSlices[host])
		}
		if r.Routes[0].Dst.String() != wantRoute.String() || r.Routes[0].GW.String() != gw.String() {
			t.Errorf("%s ADD on blue as %s: route %s, want %s via %s", host, ifname, r.Routes[0], wantRoute, gw)
		}
		if len(r.DNS.Nameservers) != 1 || r.DNS.Nameservers[0] != gw.String() || len(r.DNS.Search) != 1 || r.DNS.Search[0] != "blue" {
			t.Errorf("%s ADD on blue: dns %+v, want nameserver %s search blue", host, r.DNS, gw)
		}
		return addr, r
	}
	var bs []*fabriclab.Container
	for _, n := range f.Nodes() {
		path, err := f.Lab.AddNetNS(ctx, n.Host, "cniblue")
		if err != nil {
			t.Fatal(err)
		}
		var env []string
		if n.Host.Name == "h2" {
			env = []string{`CAP_ARGS={"aliases":{"` + conf + `":["blueweb"]}}`}
		}
		out, err := k.cnitool(ctx, n, env, "add", conf, path)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := check(n.Host.Name, out, "eth0", netip.MustParsePrefix("0.0.0.0/0"))
		if n.Host.Name == "h1" {
			t.Logf("ADD on blue on h1: %s", out)
		}
		c := &fabriclab.Container{Name: "cniblue-" + n.Host.Name, Node: n, NetNS: filepath.Base(path), Path: path, IP: addr.String()}
		bs = append(bs, c)
		adds = append(adds, added{c, "eth0"})
	}
	// h1's default container joins blue as net1.
	n1 := f.Node("h1")
	out, err := k.cnitool(ctx, n1, []string{"CNI_IFNAME=net1"}, "add", conf, cs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := check("h1", out, "net1", blue)
	t.Logf("ADD on blue as net1 on h1: %s", out)
	multi := &fabriclab.Container{Name: "cni-h1-net1", Node: n1, NetNS: cs[0].NetNS, Path: cs[0].Path, IP: addr.String()}
	adds = append(adds, added{multi, "net1"})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("ping matrix", func(t *testing.T) { assertMatrix(t, ctx, append(bs[:len(bs):len(bs)], multi), 12) })
	t.Run("isolation and the default route", func(t *testing.T) {
		// cs[0] still reaches default across hosts through eth0, and blue through net1.
		if err := fabriclab.Reach(ctx, cs[0].NetNS, cs[1].IP, 15*time.Second); err != nil {
			t.Errorf("cs[0] on default after joining blue: %v", err)
		}
		if out, err := lab.RunIn(ctx, cs[0].NetNS, "ip", "route", "show", "default"); err != nil || !strings.Contains(out, "dev eth0") || strings.Contains(out, "net1") {
			t.Errorf("default route of cs[0]: %q %v, want via eth0 only", out, err)
		}
		// A container only on blue reaches no default container.
		for _, d := range cs[1:] {
			if _, got, _ := fabriclab.Ping(ctx, bs[0].NetNS, d.IP, 2, 200*time.Millisecond); got > 0 {
				t.Errorf("%s on blue reached %s on default", bs[0].Name, d.IP)
			}
		}
	})
	t.Run("names on blue", func(t *testing.T) {
		// h2's container has the alias blueweb: h1's blue container asks the nameserver its
		// result named (its gateway on blue) and gets h2's blue address.
		gw := blueSlices["h1"].Addr().Next().String()
		var out string
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			out, err = lab.RunIn(ctx, bs[0].NetNS, "busybox", "nslookup", "blueweb", gw)
			if err == nil && strings.Contains(out, bs[1].IP) {
				return
			}
		}
		t.Errorf("nslookup blueweb %s from %s: %v\n%s; want %s", gw, bs[0].Name, err, out, bs[1].IP)
	})
	t.Run("STATUS and CHECK", func(t *testing.T) {
		for _, n := range f.Nodes() {
			if _, err := k.cnitool(ctx, n, nil, "status", conf, "/"); err != nil {
				t.Errorf("STATUS of blue on %s: %v", n.Host.Name, err)
			}
		}
		for _, a := range adds {
			env := []string{"CNI_IFNAME=" + a.ifname}
			if _, err := k.cnitool(ctx, a.c.Node, env, "check", conf, a.c.Path); err != nil {
				t.Errorf("%s %s: %v", a.c.Name, a.ifname, err)
			}
		}
		// net1 without its route to blue: CHECK names it.
		if out, err := lab.RunIn(ctx, multi.NetNS, "ip", "route", "del", blue.String()); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		_, err := k.cnitool(ctx, n1, []string{"CNI_IFNAME=net1"}, "check", conf, multi.Path)
		if err == nil || !strings.Contains(err.Error(), "no route to network blue (10.50.0.0/16)") {
			t.Errorf("CHECK of net1 without its route: %v", err)
		}
		gw := blueSlices["h1"].Addr().Next().String()
		if out, err := lab.RunIn(ctx, multi.NetNS, "ip", "route", "add", blue.String(), "via", gw, "dev", "net1"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if _, err := k.cnitool(ctx, n1, []string{"CNI_IFNAME=net1"}, "check", conf, multi.Path); err != nil {
			t.Errorf("CHECK of net1 after repair: %v", err)
		}
	})
	t.Run("DEL", func(t *testing.T) {
		for _, a := range adds {
			env := []string{"CNI_IFNAME=" + a.ifname}
			for i := 0; i < 2; i++ {
				if _, err := k.cnitool(ctx, a.c.Node, env, "del", conf, a.c.Path); err != nil {
					t.Errorf("DEL %d of %s %s: %v", i+1, a.c.Name, a.ifname, err)
				}
			}
		}
		for _, n := range f.Nodes() {
			as, err := n.Client().Attachments(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				if a.Network == "blue" {
					t.Errorf("%s after DEL: %+v left on blue", n.Host.Name, a)
				}
			}
		}
		if out, err := lab.RunIn(ctx, cs[0].NetNS, "ip", "-o", "link", "show", "net1"); err == nil {
			t.Errorf("net1 left in %s: %s", cs[0].NetNS, out)
		}
		if err := fabriclab.Reach(ctx, cs[0].NetNS, cs[1].IP, 15*time.Second); err != nil {
			t.Errorf("cs[0] on default after leaving blue: %v", err)
		}
		for _, c := range bs {
			if err := f.Lab.DeleteNetNS(ctx, c.Path); err != nil {
				t.Error(err)
			}
		}
	})
}
