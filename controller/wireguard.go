package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// WireGuard is what the loop needs of the WireGuard interface (wireguard.Device), with
// --encryption wireguard.
type WireGuard interface {
	Name() string
	Implementation() wireguard.Implementation
	Set(cfg wireguard.Config) (changed bool, err error)
	Status() (wireguard.Status, error)
}

// wireguardKeepalive is every WireGuard peer's persistent keepalive: configuring a peer that
// has one makes WireGuard send at once, so a peer that learns a rotated key starts the new
// handshake itself (no lost packets; docs/encryption.md), and idle links keep a fresh
// handshake, which is what `fabricctl peers` shows.
const wireguardKeepalive = 25 * time.Second

// SetWireGuard attaches the WireGuard interface (--encryption wireguard) and loads this
// host's key from --wireguard-key-file, creating it at first start (mode 0600). Call it
// before Run and before gossip starts: the key is part of what this node announces.
func (c *Controller) SetWireGuard(dev WireGuard) error {
	key, created, err := wireguard.LoadOrCreateKey(c.s.WireGuardKeyFile)
	if err != nil {
		return err
	}
	if created {
		c.log.Info("WireGuard key created", "file", c.s.WireGuardKeyFile, "public_key", key.PublicKey())
	} else {
		c.log.Info("WireGuard key loaded", "file", c.s.WireGuardKeyFile, "public_key", key.PublicKey())
	}
	c.mu.Lock()
	// Gossip starts with this key in the node's metadata (Meta).
	c.wg, c.wgKey, c.wgAnnounced = dev, key, key.PublicKey()
	c.mu.Unlock()
	return nil
}

// announceWireGuardKey announces this host's public key by gossip when gossip does not carry
// the current one yet (a rotation whose announcement failed is retried by every reconcile).
func (c *Controller) announceWireGuardKey(ctx context.Context) error {
	c.mu.Lock()
	pub := c.wgKey.PublicKey()
	if c.m == nil || c.wgAnnounced == pub {
		c.mu.Unlock()
		return nil
	}
	meta := c.metaLocked()
	c.mu.Unlock()
	if err := c.m.SetMeta(ctx, meta); err != nil {
		return fmt.Errorf("announce the WireGuard key: %w", err)
	}
	c.mu.Lock()
	if c.wgKey.PublicKey() == pub {
		c.wgAnnounced = pub
	}
	c.mu.Unlock()
	c.log.Info("WireGuard key announced", "public_key", pub)
	return nil
}

// wireguardMeta adds this node's encryption to m (what metaLocked announces).
func (c *Controller) wireguardMetaLocked(m *peers.Meta) {
	if !c.s.Encrypted() {
		return
	}
	m.Encryption = peers.EncryptionWireGuard
	m.WireGuardPort = c.s.WireGuardPort
	if c.wgKey != (wireguard.Key{}) {
		m.WireGuardKey = c.wgKey.PublicKey().String()
	}
}

// applyWireGuard makes the WireGuard interface's peers those of plan d: one per usable peer,
// with its announced key and endpoint and all of its slices as allowed IPs. A peer whose key
// does not parse, is this host's own or another peer's is left out (it carries nothing) and
// logged.
func (c *Controller) applyWireGuard(d fabric.Desired) error {
	c.wgMu.Lock()
	defer c.wgMu.Unlock()
	c.mu.Lock()
	dev, key := c.wg, c.wgKey
	c.mu.Unlock()
	if dev == nil {
		return errors.New("encryption is on but no WireGuard interface is attached")
	}
	cfg := wireguard.Config{PrivateKey: key, ListenPort: c.s.WireGuardPort}
	seen := map[wireguard.Key]string{key.PublicKey(): c.s.Name}
	owner := map[netip.Prefix]string{}
	for _, p := range d.WireGuard {
		k, err := wireguard.ParseKey(p.Key)
		if err == nil {
			if o, dup := seen[k]; dup {
				err = fmt.Errorf("key %s is also %s's", k, o)
			}
		}
		if err != nil {
			c.log.Warn("WireGuard peer left out: it carries no traffic", "peer", p.Peer, "err", err)
			continue
		}
		seen[k] = p.Peer
		// A prefix given to two peers would make WireGuard refuse the whole configuration;
		// the plan never does (slices are resolved), but one bad claim must not stop all.
		allowed := make([]netip.Prefix, 0, len(p.AllowedIPs))
		for _, a := range p.AllowedIPs {
			if o, dup := owner[a]; dup {
				c.log.Warn("WireGuard: slice left out, another peer has it", "peer", p.Peer, "slice", a, "other", o)
				continue
			}
			owner[a] = p.Peer
			allowed = append(allowed, a)
		}
		cfg.Peers = append(cfg.Peers, wireguard.Peer{PublicKey: k, Endpoint: p.Endpoint, AllowedIPs: allowed, PersistentKeepalive: wireguardKeepalive})
	}
	changed, err := dev.Set(cfg)
	if err != nil {
		return fmt.Errorf("configure WireGuard: %w", err)
	}
	if changed {
		c.log.Info("WireGuard configured", "interface", dev.Name(), "peers", len(cfg.Peers))
	}
	return nil
}

// RotateWireGuardKey replaces this host's WireGuard key fabric-wide: a new key is written to
// the key file, applied to the interface at once (peers unchanged) and announced by gossip;
// each peer replaces its entry for this host when gossip tells it, and its keepalive starts
// the new handshake. Packets sent meanwhile wait in WireGuard's queues (docs/encryption.md).
func (c *Controller) RotateWireGuardKey(ctx context.Context) (api.WireGuardRotateResult, error) {
	if !c.s.Encrypted() {
		return api.WireGuardRotateResult{}, api.Errorf(api.ErrUnavailable, "this fabricd runs without encryption: no WireGuard key to rotate")
	}
	c.wgMu.Lock()
	c.mu.Lock()
	old, d := c.wgKey, c.desired
	c.mu.Unlock()
	key, err := wireguard.ReplaceKey(c.s.WireGuardKeyFile)
	if err != nil {
		c.wgMu.Unlock()
		return api.WireGuardRotateResult{}, fmt.Errorf("rotate WireGuard key: %w", err)
	}
	c.mu.Lock()
	c.wgKey = key
	c.mu.Unlock()
	c.wgMu.Unlock()
	res := api.WireGuardRotateResult{OldPublicKey: old.PublicKey().String(), PublicKey: key.PublicKey().String()}
	c.log.Info("WireGuard key replaced", "public_key", res.PublicKey, "old", res.OldPublicKey)
	// The key is replaced whatever follows: the loop retries both steps until they succeed.
	defer c.Kick()
	if err := c.applyWireGuard(d); err != nil {
		return res, err
	}
	return res, c.announceWireGuardKey(ctx)
}

// wireguardStatus reads the WireGuard interface for the API (nil without encryption), and
// each peer's handshake state by peer name.
func (c *Controller) wireguardStatus(d fabric.Desired) (*api.WireGuard, map[string]string) {
	c.mu.Lock()
	dev := c.wg
	c.mu.Unlock()
	if !c.s.Encrypted() || dev == nil {
		return nil, nil
	}
	out := &api.WireGuard{Interface: dev.Name(), Implementation: string(dev.Implementation())}
	byKey := map[string]string{}
	for _, p := range d.WireGuard {
		byKey[p.Key] = p.Peer
	}
	states := map[string]string{}
	for _, p := range d.WireGuard {
		states[p.Peer] = "no key"
	}
	st, err := dev.Status()
	if err != nil {
		out.Error = err.Error()
		return out, states
	}
	out.PublicKey, out.ListenPort, out.PID = st.PublicKey.String(), st.ListenPort, st.PID
	now := time.Now()
	for _, p := range st.Peers {
		wp := api.WireGuardPeer{Name: byKey[p.PublicKey.String()], PublicKey: p.PublicKey.String(), LatestHandshake: p.LastHandshake, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
		if p.Endpoint.IsValid() {
			wp.Endpoint = p.Endpoint.String()
		}
		for _, a := range p.AllowedIPs {
			wp.AllowedIPs = append(wp.AllowedIPs, a.String())
		}
		if wp.Name != "" {
			states[wp.Name] = api.HandshakeState(p.LastHandshake, now)
		}
		out.Peers = append(out.Peers, wp)
	}
	sort.Slice(out.Peers, func(i, j int) bool { return out.Peers[i].Name < out.Peers[j].Name })
	return out, states
}
