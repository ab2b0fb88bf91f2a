package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// Data-path modes (--pipeline).
const (
	// PipelineRouted routes cross-host traffic inside OVS with an explicit OpenFlow pipeline
	// (package flows): no hairpin through the host kernel, no broadcast across tunnels.
	PipelineRouted = "routed"
	// PipelineL2 is the flood-and-learn baseline: br-int runs NORMAL and the host kernel routes
	// between the subnets through the gateway port.
	PipelineL2 = "l2"
)

// DatapathAuto is the --datapath that fabricd resolves at start: the kernel datapath when the
// openvswitch module is loaded, else the userspace one. Every other value is a fabric.Datapath.
const DatapathAuto = "auto"

// Config is fabricd's configuration. Every field is settable as a flag of the same name
// (kebab-case, its yaml tag; its usage tag is the flag's help) and in the YAML file given by
// --config; flags win over the file (see Bind and Resolve).
type Config struct {
	Name          string        `yaml:"name" usage:"node name, unique in the fabric"`
	AdvertiseAddr string        `yaml:"advertise-addr" usage:"underlay IP peers use for gossip and tunnels (default: address of the default-route interface)"`
	GossipPort    int           `yaml:"gossip-port" usage:"gossip TCP/UDP port"`
	Join          []string      `yaml:"join" usage:"HOST[:PORT],... of existing members (empty: start a new fabric)"`
	ClusterCIDR   string        `yaml:"cluster-cidr" usage:"address range all per-host subnets come from"`
	SubnetPrefix  int           `yaml:"subnet-prefix" usage:"prefix length of per-host subnets"`
	Subnet        string        `yaml:"subnet" usage:"static per-host subnet (default: claimed by gossip)"`
	Tunnel        string        `yaml:"tunnel" usage:"tunnel type: gre or vxlan (all members must agree)"`
	OVSDB         string        `yaml:"ovsdb" usage:"OVSDB endpoint: unix:PATH or tcp:IP:PORT"`
	Datapath      string        `yaml:"datapath" usage:"OVS datapath: auto, system (kernel) or netdev (userspace)"`
	Bridge        string        `yaml:"bridge" usage:"integration bridge name"`
	GatewayPort   string        `yaml:"gateway-port" usage:"internal port holding the subnet gateway address"`
	APISocket     string        `yaml:"api-socket" usage:"unix socket of the local API (mode 0600)"`
	GossipKeyFile string        `yaml:"gossip-key-file" usage:"file with a 16/24/32-byte AES key (raw, hex or base64) all members share"`
	MetricsAddr   string        `yaml:"metrics-addr" usage:"serve Prometheus metrics on this address (off unless set)"`
	LeaveOnExit   bool          `yaml:"leave-on-exit" usage:"leave the fabric gracefully on SIGTERM/SIGINT (default: keep the data path, peers wait --dead-peer-grace)"`
	DeadPeerGrace time.Duration `yaml:"dead-peer-grace" usage:"how long a failed peer keeps its tunnel and route"`
	Resync        time.Duration `yaml:"resync" usage:"periodic reconcile interval"`
	LogLevel      string        `yaml:"log-level" usage:"debug, info, warn or error"`
	Masquerade    bool          `yaml:"masquerade" usage:"masquerade container traffic leaving the cluster CIDR to the host's address"`
	Pipeline      string        `yaml:"pipeline" usage:"data path: routed (OpenFlow routing inside OVS) or l2 (NORMAL switching, host kernel routes)"`
	DockerHost    string        `yaml:"docker-host" usage:"Docker Engine API endpoint used to resolve container names (empty: off)"`
	PodmanHost    string        `yaml:"podman-host" usage:"Podman API endpoint used to resolve container names (empty: off)"`

	// ClaimRetention is how long the subnet of a node that died or left stays reserved for
	// it (0: not at all; freed once it has been dead for DeadPeerGrace, or has left).
	ClaimRetention time.Duration `yaml:"claim-retention" usage:"how long the subnet of a peer that died or left stays reserved for its return (0: freed after --dead-peer-grace)"`
	// KeyringFile persists the gossip keyring; empty means KeyringPath's default.
	KeyringFile string `yaml:"keyring-file" usage:"where the gossip keyring is kept, mode 0600 (default: <gossip-key-file>.keyring, else /var/lib/ovsfabric/gossip.keyring)"`
	// APIGroup, when set, opens the API socket to this group (mode 0660).
	APIGroup string `yaml:"api-group" usage:"open the API socket to this group (root:GROUP, mode 0660); default: root only (0600)"`
	// OVSRundir is ovs-vswitchd's run directory; empty means found (see OVSRundirCandidates).
	OVSRundir string `yaml:"ovs-rundir" usage:"ovs-vswitchd's run directory, holding <bridge>.mgmt (default: $OVS_RUNDIR, else the --ovsdb socket's directory when it holds it, else /var/run/openvswitch)"`
	// DNS serves the fabric's names on the gateway address of every network served here.
	DNS bool `yaml:"dns" usage:"answer DNS (UDP and TCP) on the gateway address of every network served here"`
	// DNSPort is the port of the fabric DNS server (53; another only for tests).
	DNSPort int `yaml:"dns-port" usage:"port of the fabric DNS server"`
	// DNSResolvConf names the upstream resolvers other names are forwarded to.
	DNSResolvConf string `yaml:"dns-resolv-conf" usage:"resolv.conf naming the upstream resolvers the fabric DNS forwards other names to"`

	// Encryption of the data plane between hosts (docs/encryption.md).
	Encryption string `yaml:"encryption" usage:"encryption of container traffic between hosts: none or wireguard (all members must agree)"`
	// WireGuardPort is the UDP port WireGuard listens on.
	WireGuardPort int `yaml:"wireguard-port" usage:"UDP port of WireGuard (with --encryption wireguard)"`
	// WireGuardInterface is the WireGuard interface's name.
	WireGuardInterface string `yaml:"wireguard-interface" usage:"name of the WireGuard interface (userspace devices of one machine need distinct names)"`
	// WireGuardKeyFile holds this host's WireGuard private key, made at first start (0600).
	WireGuardKeyFile string `yaml:"wireguard-key-file" usage:"this host's WireGuard private key, generated at first start (mode 0600)"`
	// WireGuardImplementation picks kernel WireGuard or the embedded wireguard-go.
	WireGuardImplementation string `yaml:"wireguard-implementation" usage:"WireGuard implementation: auto (kernel if available), kernel or userspace"`

	// DockerPlugin serves Docker's network and IPAM plugin (auto, on, off).
	DockerPlugin string `yaml:"docker-plugin" usage:"serve the Docker network and IPAM plugin: on, off, or auto (on when --docker-host is the system's Docker and dockerd is installed or answers)"`
	// DockerPluginSocket is where the plugin listens: dockerd finds it there.
	DockerPluginSocket string `yaml:"docker-plugin-socket" usage:"unix socket of the Docker plugin (dockerd looks only in /run/docker/plugins)"`

	// TunnelMode is per-peer (a tunnel port per peer) or flow (one flow-based port); hosts
	// of either mode talk to each other (docs/operations.md: switching host by host).
	TunnelMode string `yaml:"tunnel-mode" usage:"tunnel ports: per-peer (one per peer) or flow (one flow-based port, options:remote_ip=flow; routed pipeline only)"`
}

// DefaultWireGuardKeyFile is where the WireGuard key is kept by default, beside the keyring.
const DefaultWireGuardKeyFile = "/var/lib/ovsfabric/wireguard.key"

// Values of --docker-plugin.
const (
	DockerPluginAuto = "auto"
	DockerPluginOn   = "on"
	DockerPluginOff  = "off"
)

// DefaultConfig is the configuration fabricd starts from before the file and flags.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:          host,
		GossipPort:    7946,
		ClusterCIDR:   "10.244.0.0/16",
		SubnetPrefix:  24,
		Tunnel:        string(fabric.TunnelVXLAN),
		TunnelMode:    string(fabric.TunnelPerPeer),
		OVSDB:         "unix:/var/run/openvswitch/db.sock",
		Datapath:      DatapathAuto,
		Bridge:        "br-int",
		GatewayPort:   "fabric0",
		APISocket:     "/run/ovsfabric/fabricd.sock",
		DeadPeerGrace: 3 * time.Minute,
		Resync:        5 * time.Second,
		LogLevel:      "info",
		Masquerade:    true,
		Pipeline:      PipelineRouted,
		DockerHost:    "unix:///var/run/docker.sock",
		PodmanHost:    "unix:///run/podman/podman.sock",

		ClaimRetention: 24 * time.Hour,
		DNS:            true,
		DNSPort:        53,
		DNSResolvConf:  "/etc/resolv.conf",

		Encryption:              string(fabric.EncryptionNone),
		WireGuardPort:           51820,
		WireGuardInterface:      "wgfab0",
		WireGuardKeyFile:        DefaultWireGuardKeyFile,
		WireGuardImplementation: "auto",

		DockerPlugin:       DockerPluginAuto,
		DockerPluginSocket: "/run/docker/plugins/ovsfabric.sock",
	}
}

// LoadFile overlays the YAML file at path onto c. Unknown keys are an error, so a typo in the
// file never silently falls back to a default.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := c.LoadYAML(data); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// unknownField matches yaml.v3's wording for a key KnownFields rejects.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// plainYAMLError rewords yaml.v3's "field tunnle not found in type config.Config" as
// `line 1: unknown key "tunnle" (did you mean "tunnel"?)`; other errors pass through.
func plainYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		msg := fmt.Sprintf("line %s: unknown key %q", m[1], m[2])
		if near := nearestKey(m[2]); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		msgs = append(msgs, msg)
	}
	return &configError{msg: strings.Join(msgs, "; "), err: err}
}

// configError is a reworded YAML error that still unwraps to the original.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.err }

// Keys are the keys a config file may set, in the order of Config's fields.
func Keys() []string {
	t := reflect.TypeOf(Config{})
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// nearestKey is the known key within edit distance 2 of key, or "".
func nearestKey(key string) string {
	best, bestD := "", 3
	for _, k := range Keys() {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Settings is a validated Config, parsed into the types the rest of fabricd uses.
type Settings struct {
	Config
	Advertise    netip.Addr
	Cluster      netip.Prefix
	StaticSubnet netip.Prefix
	TunnelType   fabric.TunnelType
	GossipKey    []byte
	// KeyringPath is where the gossip keyring is persisted (see Config.KeyringPath).
	KeyringPath string
	// EncryptionMode is --encryption parsed.
	EncryptionMode fabric.Encryption
	// TunnelModeValue is --tunnel-mode parsed.
	TunnelModeValue fabric.TunnelMode
	// UnderlayMTU and DatapathType are filled by fabricd from the host (underlay interface,
	// datapath auto-detection) before the controller starts.
	UnderlayMTU  int
	DatapathType fabric.Datapath
}

// Validate checks c and parses it into Settings. The advertise address may still be empty
// here; fabricd fills it from the default-route interface.
func (c Config) Validate() (Settings, error) {
	s := Settings{Config: c}
	var err error
	if c.Name == "" {
		return s, fmt.Errorf("--name is empty and the hostname is unknown")
	}
	if c.AdvertiseAddr != "" {
		if s.Advertise, err = netip.ParseAddr(c.AdvertiseAddr); err != nil {
			return s, fmt.Errorf("--advertise-addr: %w", err)
		}
	}
	if c.GossipPort <= 0 || c.GossipPort > 65535 {
		return s, fmt.Errorf("--gossip-port %d out of range", c.GossipPort)
	}
	if s.Cluster, err = netip.ParsePrefix(c.ClusterCIDR); err != nil {
		return s, fmt.Errorf("--cluster-cidr: %w", err)
	}
	if _, err := fabric.SubnetCount(s.Cluster, c.SubnetPrefix); err != nil {
		return s, fmt.Errorf("--subnet-prefix: %w", err)
	}
	if c.Subnet != "" {
		if s.StaticSubnet, err = netip.ParsePrefix(c.Subnet); err != nil {
			return s, fmt.Errorf("--subnet: %w", err)
		}
		if err := fabric.ValidateSubnet(s.Cluster, c.SubnetPrefix, s.StaticSubnet); err != nil {
			return s, fmt.Errorf("--subnet: %w", err)
		}
	}
	if s.TunnelType, err = fabric.ParseTunnelType(c.Tunnel); err != nil {
		return s, fmt.Errorf("--tunnel: %w", err)
	}
	if s.TunnelModeValue, err = fabric.ParseTunnelMode(c.TunnelMode); err != nil {
		return s, fmt.Errorf("--tunnel-mode: %w", err)
	}
	if s.EncryptionMode, err = fabric.ParseEncryption(c.Encryption); err != nil {
		return s, fmt.Errorf("--encryption: %w", err)
	}
	if s.EncryptionMode.Encrypted() {
		if c.WireGuardPort <= 0 || c.WireGuardPort > 65535 {
			return s, fmt.Errorf("--wireguard-port %d out of range", c.WireGuardPort)
		}
		if err := fabric.ValidIfName(c.WireGuardInterface); err != nil {
			return s, fmt.Errorf("--wireguard-interface: %w", err)
		}
		if c.WireGuardInterface == c.GatewayPort || c.WireGuardInterface == c.Bridge {
			return s, fmt.Errorf("--wireguard-interface %q is the gateway port's or the bridge's name", c.WireGuardInterface)
		}
		if c.WireGuardKeyFile == "" {
			return s, fmt.Errorf("--wireguard-key-file is empty")
		}
		switch c.WireGuardImplementation {
		case "auto", "kernel", "userspace":
		default:
			return s, fmt.Errorf("--wireguard-implementation %q: want auto, kernel or userspace", c.WireGuardImplementation)
		}
	}
	if c.Datapath != DatapathAuto {
		if _, err := fabric.ParseDatapath(c.Datapath); err != nil {
			return s, fmt.Errorf("--datapath %q: want auto, system or netdev", c.Datapath)
		}
	}
	if c.DNS && (c.DNSPort <= 0 || c.DNSPort > 65535) {
		return s, fmt.Errorf("--dns-port %d out of range", c.DNSPort)
	}
	switch c.DockerPlugin {
	case DockerPluginAuto, DockerPluginOn, DockerPluginOff:
	default:
		return s, fmt.Errorf("--docker-plugin %q: want auto, on or off", c.DockerPlugin)
	}
	if c.DockerPlugin != DockerPluginOff && c.DockerPluginSocket == "" {
		return s, fmt.Errorf("--docker-plugin-socket is empty")
	}
	if c.Pipeline != PipelineRouted && c.Pipeline != PipelineL2 {
		return s, fmt.Errorf("--pipeline %q: want routed or l2", c.Pipeline)
	}
	if s.TunnelModeValue.Flow() && c.Pipeline == PipelineL2 && !s.EncryptionMode.Encrypted() {
		// NORMAL cannot set tun_dst: a flow-based port needs the routed pipeline's flows.
		return s, fmt.Errorf("--tunnel-mode flow needs --pipeline routed (l2 switching cannot choose the peer on a flow-based port)")
	}
	if err := fabric.ValidIfName(c.Bridge); err != nil {
		return s, fmt.Errorf("--bridge: %w", err)
	}
	if err := fabric.ValidIfName(c.GatewayPort); err != nil {
		return s, fmt.Errorf("--gateway-port: %w", err)
	}
	if !strings.HasPrefix(c.OVSDB, "unix:") && !strings.HasPrefix(c.OVSDB, "tcp:") {
		return s, fmt.Errorf("--ovsdb %q: want unix:PATH or tcp:IP:PORT", c.OVSDB)
	}
	if c.APISocket == "" {
		return s, fmt.Errorf("--api-socket is empty")
	}
	if c.DeadPeerGrace < 0 || c.Resync <= 0 {
		return s, fmt.Errorf("--dead-peer-grace must be >= 0 and --resync > 0")
	}
	if c.ClaimRetention < 0 {
		return s, fmt.Errorf("--claim-retention must be >= 0")
	}
	for _, j := range c.Join {
		if j == "" {
			return s, fmt.Errorf("--join has an empty address")
		}
	}
	if c.GossipKeyFile != "" {
		if s.GossipKey, err = readKey(c.GossipKeyFile); err != nil {
			return s, err
		}
	}
	s.KeyringPath = c.KeyringPath()
	return s, nil
}

// readKey reads an AES key for gossip encryption: 16, 24 or 32 raw bytes, or their hex or
// base64 text. Trailing white space is ignored.
func readKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	key, err := decodeKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file %s: %w", path, err)
	}
	return key, nil
}

func decodeKey(text string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, func(s string) ([]byte, error) { return []byte(s), nil }} {
		if b, err := dec(text); err == nil && (len(b) == 16 || len(b) == 24 || len(b) == 32) {
			return b, nil
		}
	}
	return nil, fmt.Errorf("key must be 16, 24 or 32 bytes (raw, hex or base64), got %d characters", len(text))
}

// DefaultKeyringFile is where the gossip keyring is kept without --gossip-key-file.
const DefaultKeyringFile = "/var/lib/ovsfabric/gossip.keyring"

// KeyringPath is where the gossip keyring is persisted: --keyring-file, else next to the
// gossip key file that seeds it (<gossip-key-file>.keyring), else DefaultKeyringFile.
func (c Config) KeyringPath() string {
	switch {
	case c.KeyringFile != "":
		return c.KeyringFile
	case c.GossipKeyFile != "":
		return c.GossipKeyFile + ".keyring"
	}
	return DefaultKeyringFile
}

// LoadYAML overlays a YAML configuration onto c; unknown keys are an error (see LoadFile).
func (c *Config) LoadYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return plainYAMLError(err)
	}
	return nil
}

// MTU is the MTU of container interfaces, of the gateway and of the WireGuard interface: the
// underlay's less the tunnel overhead, or WireGuard's when encrypted (fabric.FabricMTU). It
// is the one place fabricd computes it for this host.
func (s Settings) MTU() (int, error) {
	return fabric.FabricMTU(s.UnderlayMTU, s.TunnelType, s.encryption(), s.Advertise.Is6())
}

// encryption is EncryptionMode, none when unset (Settings made by hand in tests).
func (s Settings) encryption() fabric.Encryption {
	if s.EncryptionMode == "" {
		return fabric.EncryptionNone
	}
	return s.EncryptionMode
}

// Encrypted reports whether the data plane runs over WireGuard.
func (s Settings) Encrypted() bool { return s.EncryptionMode.Encrypted() }
