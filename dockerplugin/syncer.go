package dockerplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
)

// dockerAPIVersion is the Engine API version the Syncer speaks (dockerd 20.10's; newer
// daemons serve it too).
const dockerAPIVersion = "v1.41"

// Syncer keeps Docker's networks in step with the fabric's, through the Docker API, always
// from its own goroutine (never from a plugin handler): it names and creates the fabric
// network of a Docker network created here with a new subnet, and creates the Docker
// network of every fabric network that has none on this host.
type Syncer struct {
	d        *Driver
	hc       *http.Client
	log      *slog.Logger
	interval time.Duration
	// created are the fabric networks (name → creation time) whose Docker network a
	// Syncer made or found, persisted (madeKeyPrefix): it never makes one again, so
	// `docker network rm` sticks, also across restarts.
	created map[string]uint64
	// since is when each Docker network awaiting its name was first looked up in vain.
	since map[string]time.Time
	// gone counts, by Docker network ID, the passes in a row that found its fabric network
	// removed: at the second, the Docker network is removed too.
	gone map[string]int
}

// nameWait bounds how long a Docker network's name is looked up: one Docker never stored
// (its create failed after CreateNetwork) gets an error instead of a lookup forever.
const nameWait = 2 * time.Minute

// NewSyncer returns a Syncer for the Docker API at host (unix:///PATH).
func NewSyncer(d *Driver, host string, log *slog.Logger) (*Syncer, error) {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || path == "" {
		return nil, fmt.Errorf("docker host %q: only unix:///PATH is supported", host)
	}
	if d != nil {
		d.mu.Lock()
		d.naming = true
		d.mu.Unlock()
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", path)
		},
	}}
	return &Syncer{d: d, hc: hc, log: log, interval: 5 * time.Second, created: map[string]uint64{}, since: map[string]time.Time{}, gone: map[string]int{}}, nil
}

// Ping reports whether the Docker API answers.
func Ping(ctx context.Context, host string) error {
	s, err := NewSyncer(nil, host, nil)
	if err != nil {
		return err
	}
	var v any
	return s.do(ctx, http.MethodGet, "/_ping", nil, &v)
}

// madeKeyPrefix starts the Open_vSwitch external_ids key recording that a fabric network
// has had its Docker network here: ovsfabric-docker-made.NAME = its creation time.
const madeKeyPrefix = "ovsfabric-docker-made."

// load reads the persisted creations.
func (s *Syncer) load(ctx context.Context) {
	ids, err := s.d.store.SystemExternalIDs(ctx)
	if err != nil {
		s.log.Warn("read the docker networks made", "err", err)
		return
	}
	for k, v := range ids {
		if name, ok := strings.CutPrefix(k, madeKeyPrefix); ok {
			if c, err := strconv.ParseUint(v, 10, 64); err == nil {
				s.created[name] = c
			}
		}
	}
}

// Run syncs until ctx ends: at once, whenever a Docker network awaits its name, every
// interval, and when kick fires (the fabric's networks changed).
func (s *Syncer) Run(ctx context.Context, kick <-chan struct{}) {
	s.load(ctx)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.d.pending:
		case <-kick:
		case <-t.C:
		}
	}
}

type dockerNetwork struct {
	ID      string
	Name    string
	Driver  string
	Options map[string]string
}

func (s *Syncer) sync(ctx context.Context) {
	s.nameNetworks(ctx)
	if err := s.nameEndpoints(ctx); err != nil {
		s.log.Debug("docker endpoints not named yet", "err", err)
	}
	if err := s.removeDockerNetworks(ctx); err != nil {
		s.log.Debug("docker networks of removed fabric networks not removed yet", "err", err)
	}
	if err := s.createDockerNetworks(ctx); err != nil {
		s.log.Debug("docker networks not in step yet", "err", err)
	}
}

// nameNetworks creates the fabric network of each Docker network awaiting one, named as the
// Docker network.
func (s *Syncer) nameNetworks(ctx context.Context) {
	s.d.mu.Lock()
	var ids []string
	for id, m := range s.d.networks {
		if m.Network == "" && m.Err == "" {
			ids = append(ids, id)
		}
	}
	s.d.mu.Unlock()
	for _, id := range ids {
		var n dockerNetwork
		s.d.mu.Lock()
		m := s.d.networks[id]
		s.d.mu.Unlock()
		if err := s.do(ctx, http.MethodGet, "/networks/"+id, nil, &n); err != nil {
			if _, ok := s.since[id]; !ok {
				s.since[id] = time.Now()
			}
			if time.Since(s.since[id]) < nameWait {
				// Docker stores the network once CreateNetwork has answered: retried
				// soon (the pending channel stays armed).
				s.log.Debug("docker network not readable yet", "id", id[:12], "err", err)
				select {
				case s.d.pending <- struct{}{}:
				default:
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			n.Name = ""
		}
		delete(s.since, id)
		if n.Name == "" {
			m.Err = "the Docker API never showed the network's name"
			s.d.mu.Lock()
			s.d.networks[id] = m
			s.d.mu.Unlock()
			continue
		}
		_, err := s.d.fab.CreateNetwork(ctx, api.NetworkCreateRequest{Name: n.Name, Subnet: m.Subnet})
		if err != nil {
			if nets, lerr := s.d.fab.Networks(ctx); lerr == nil {
				if x, ok, _ := byPool(nets, mustPrefix(m.Subnet)); ok && x.Name == n.Name {
					err = nil // created meanwhile (another host, the same command)
				}
			}
		}
		if err != nil {
			m.Err = fmt.Sprintf("creating fabric network %s (%s): %v", n.Name, m.Subnet, err)
			s.log.Error("docker network without a fabric network", "docker_network", n.Name, "err", err)
		} else {
			m.Network = n.Name
			s.log.Info("created the fabric network of a docker network", "network", n.Name, "subnet", m.Subnet)
		}
		if err := s.d.save(ctx, id, &m); err != nil {
			s.log.Warn("persist docker network", "id", id[:12], "err", err)
		}
		s.d.mu.Lock()
		s.d.networks[id] = m
		s.d.mu.Unlock()
	}
}

// createDockerNetworks creates the Docker network of every served fabric network (but
// default, a name Docker reserves) that has none here.
func (s *Syncer) createDockerNetworks(ctx context.Context) error {
	nets, err := s.d.fab.Networks(ctx)
	if err != nil {
		return err
	}
	mapped := map[string]bool{}
	for _, n := range s.d.Mapped() {
		mapped[n] = true
	}
	var existing []dockerNetwork
	loaded := false
	for _, n := range nets {
		if n.Name == "default" || n.Conflict != "" || mapped[n.Name] || s.created[n.Name] == n.Created {
			continue
		}
		if !loaded {
			if err := s.do(ctx, http.MethodGet, "/networks", nil, &existing); err != nil {
				return err
			}
			loaded = true
		}
		taken := false
		for _, x := range existing {
			if x.Name == n.Name {
				taken = true
				if x.Driver != DriverName {
					s.log.Warn("a docker network of another driver has a fabric network's name: not creating ours", "network", n.Name, "driver", x.Driver)
				}
			}
		}
		if !taken {
			body := map[string]any{
				"Name": n.Name, "CheckDuplicate": true, "Driver": DriverName, "Internal": n.Internal,
				"IPAM":    map[string]any{"Driver": DriverName, "Config": []map[string]string{{"Subnet": n.Subnet}}},
				"Options": map[string]string{OptNetwork: n.Name},
			}
			var res struct{ ID string }
			if err := s.do(ctx, http.MethodPost, "/networks/create", body, &res); err != nil {
				s.log.Warn("create the docker network of a fabric network", "network", n.Name, "err", err)
				continue
			}
			s.log.Info("created the docker network of a fabric network", "network", n.Name, "id", short(res.ID))
		}
		s.created[n.Name] = n.Created
		key := madeKeyPrefix + n.Name
		if err := s.d.store.SetSystemExternalIDs(ctx, map[string]string{key: strconv.FormatUint(n.Created, 10)}, nil); err != nil {
			s.log.Warn("persist the docker network of a fabric network", "network", n.Name, "err", err)
		}
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// do calls the Docker API and decodes its JSON answer into out.
func (s *Syncer) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: "docker", Path: "/" + dockerAPIVersion + path}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("docker API %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Message string }
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("docker API %s %s: %s: %s", method, path, resp.Status, e.Message)
	}
	if path == "/_ping" || out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("docker API %s %s: %w", method, path, err)
	}
	return nil
}

// nameEndpoints gives this host's Docker endpoints that have none the names of their
// containers (name and --network-alias): the fabric's DNS answers them on every host.
func (s *Syncer) nameEndpoints(ctx context.Context) error {
	ids, err := s.d.fab.Unnamed(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	type networks struct {
		Networks map[string]struct {
			EndpointID string
			Aliases    []string
		}
	}
	var cs []struct {
		ID              string `json:"Id"`
		NetworkSettings networks
	}
	if err := s.do(ctx, http.MethodGet, "/containers/json", nil, &cs); err != nil {
		return err
	}
	for _, c := range cs {
		ours := false
		for _, n := range c.NetworkSettings.Networks {
			ours = ours || want[n.EndpointID]
		}
		if !ours {
			continue
		}
		// The list leaves the aliases out: inspect has them.
		var ci struct {
			Name            string
			NetworkSettings networks
		}
		if err := s.do(ctx, http.MethodGet, "/containers/"+c.ID+"/json", nil, &ci); err != nil {
			return err
		}
		name := strings.TrimPrefix(ci.Name, "/")
		for _, n := range ci.NetworkSettings.Networks {
			if !want[n.EndpointID] {
				continue
			}
			if err := s.d.fab.SetNames(ctx, n.EndpointID, name, n.Aliases); err != nil {
				s.log.Warn("name a docker endpoint", "container", name, "err", err)
				continue
			}
			s.log.Debug("named a docker endpoint", "container", name, "aliases", n.Aliases)
		}
	}
	return nil
}

// removeDockerNetworks removes the Docker networks whose fabric network was removed (seen
// twice in a row: a network is never missing from a successful listing otherwise). Docker
// refuses while containers use one: retried at every pass, logged.
func (s *Syncer) removeDockerNetworks(ctx context.Context) error {
	nets, err := s.d.fab.Networks(ctx)
	if err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, n := range nets {
		exists[n.Name] = true
	}
	for id, name := range s.d.Mapped() {
		if name == "" || exists[name] {
			delete(s.gone, id)
			continue
		}
		if s.gone[id]++; s.gone[id] < 2 {
			continue
		}
		if err := s.do(ctx, http.MethodDelete, "/networks/"+id, nil, nil); err != nil {
			s.log.Warn("the fabric network was removed; removing its docker network failed", "network", name, "err", err)
			continue
		}
		s.log.Info("removed the docker network of a removed fabric network", "network", name, "id", short(id))
		delete(s.gone, id)
	}
	return nil
}
