package controller

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// Config is fabricd's configuration. Every field is settable as a flag of the same name
// (kebab-case) and in the YAML file given by --config; flags win over the file.
type Config struct {
	Name          string        `yaml:"name"`
	AdvertiseAddr string        `yaml:"advertise-addr"`
	GossipPort    int           `yaml:"gossip-port"`
	Join          []string      `yaml:"join"`
	ClusterCIDR   string        `yaml:"cluster-cidr"`
	SubnetPrefix  int           `yaml:"subnet-prefix"`
	Subnet        string        `yaml:"subnet"`
	Tunnel        string        `yaml:"tunnel"`
	OVSDB         string        `yaml:"ovsdb"`
	Datapath      string        `yaml:"datapath"`
	Bridge        string        `yaml:"bridge"`
	GatewayPort   string        `yaml:"gateway-port"`
	APISocket     string        `yaml:"api-socket"`
	GossipKeyFile string        `yaml:"gossip-key-file"`
	MetricsAddr   string        `yaml:"metrics-addr"`
	LeaveOnExit   bool          `yaml:"leave-on-exit"`
	DeadPeerGrace time.Duration `yaml:"dead-peer-grace"`
	Resync        time.Duration `yaml:"resync"`
	LogLevel      string        `yaml:"log-level"`
	Masquerade    bool          `yaml:"masquerade"`
	Pipeline      string        `yaml:"pipeline"`
	DockerHost    string        `yaml:"docker-host"`
	PodmanHost    string        `yaml:"podman-host"`
	// KeyringFile persists the gossip keyring; empty means KeyringPath's default.
	KeyringFile string `yaml:"keyring-file"`
	// APIGroup, when set, opens the API socket to this group (mode 0660).
	APIGroup string `yaml:"api-group"`
	// OVSRundir is ovs-vswitchd's run directory; empty means found (see OVSRundirCandidates).
	OVSRundir string `yaml:"ovs-rundir"`
}

// DefaultConfig is the configuration fabricd starts from before the file and flags.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:          host,
		GossipPort:    7946,
		ClusterCIDR:   "10.244.0.0/16",
		SubnetPrefix:  24,
		Tunnel:        string(fabric.TunnelVXLAN),
		OVSDB:         "unix:/var/run/openvswitch/db.sock",
		Datapath:      "auto",
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
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// Settings is a validated Config, parsed into the types the controller uses.
type Settings struct {
	Config
	Advertise    netip.Addr
	Cluster      netip.Prefix
	StaticSubnet netip.Prefix
	TunnelType   fabric.TunnelType
	GossipKey    []byte
	// KeyringPath is where the gossip keyring is persisted (see Config.KeyringPath).
	KeyringPath string
	// UnderlayMTU and DatapathType are filled by fabricd from the host (underlay interface,
	// datapath auto-detection) before the controller starts.
	UnderlayMTU  int
	DatapathType string
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
	switch c.Datapath {
	case "auto", "system", "netdev":
	default:
		return s, fmt.Errorf("--datapath %q: want auto, system or netdev", c.Datapath)
	}
	if c.Pipeline != PipelineRouted && c.Pipeline != PipelineL2 {
		return s, fmt.Errorf("--pipeline %q: want routed or l2", c.Pipeline)
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
