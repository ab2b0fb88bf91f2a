package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// stateVersion is written into state.json. Version 0 files (no field) have the same layout.
const stateVersion = 1

// registryDir holds one <name>.json per lab on this machine: a copy of its state file. Creating
// it (O_EXCL) reserves the lab name, so two labs never share a namespace prefix, and the copy
// lets `lab down --name` clean a lab whose directory is gone (t.TempDir removed after a failed
// Down). /run is a tmpfs: it goes away with a reboot, as the namespaces do. A variable for tests.
var registryDir = "/run/ovsfabric-lab"

// state is <dir>/state.json: everything the lab made, written before (namespaces) or right
// after (processes) each step, so Down works from it alone after a crash.
type state struct {
	Version  int    `json:"version"`
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	Datapath string `json:"datapath"`
	Underlay string `json:"underlay_cidr"`
	MTU      int    `json:"mtu"`
	NextHost int    `json:"next_host"`
	// Keep marks a lab meant to outlive the process that built it (lab up); `lab gc` leaves
	// it alone. Otherwise OwnerPID/OwnerStart identify that process.
	Keep       bool         `json:"keep,omitempty"`
	OwnerPID   int          `json:"owner_pid,omitempty"`
	OwnerStart uint64       `json:"owner_start,omitempty"`
	Netns      []string     `json:"netns"`
	Hosts      []hostRecord `json:"hosts"`
	Procs      []procRecord `json:"procs"`
	// Dockers are the private dockerds started with Host.StartDocker.
	Dockers   []dockerRecord `json:"dockers,omitempty"`
	External  string         `json:"external,omitempty"`
	ExtIP     string         `json:"external_ip,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

type hostRecord struct {
	Name       string `json:"name"`
	NetNS      string `json:"netns"`
	Dir        string `json:"dir"`
	UnderlayIP string `json:"underlay_ip"`
	Index      int    `json:"index"`
}

func encodeState(st *state) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode lab state: %w", err)
	}
	return append(b, '\n'), nil
}

func decodeState(b []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode lab state: %w", err)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("lab state version %d is newer than this code (%d)", st.Version, stateVersion)
	}
	if err := checkName(st.Name); err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	return &st, nil
}

// writeFileAtomic writes b to path through a temporary file in the same directory.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}

func registryPath(name string) string { return filepath.Join(registryDir, name+".json") }

// reserve claims the lab name on this machine. It fails when another lab holds the name or
// namespaces with the name's prefix exist.
func reserve(name string, b []byte) error {
	if ns := netnsWithPrefix(NetNSPrefix(name)); len(ns) > 0 {
		return fmt.Errorf("lab name %q is in use: namespaces %s exist (remove them with `lab down --name %s`)", name, strings.Join(ns, ", "), name)
	}
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return fmt.Errorf("lab registry: %w", err)
	}
	f, err := os.OpenFile(registryPath(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		dir := "?"
		if old, err := readRegistry(name); err == nil {
			dir = old.Dir
		}
		return fmt.Errorf("lab name %q is in use by the lab in %s (remove it with `lab down --name %s`)", name, dir, name)
	}
	if err != nil {
		return fmt.Errorf("lab registry: %w", err)
	}
	_, werr := f.Write(b)
	return errors.Join(werr, f.Close())
}

func readRegistry(name string) (*state, error) {
	b, err := os.ReadFile(registryPath(name))
	if err != nil {
		return nil, err
	}
	return decodeState(b)
}

// release removes the lab's registry entry if it is this lab's (same directory).
func release(name, dir string) error {
	st, err := readRegistry(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && st.Dir != dir {
		return nil // the name has been taken again by another lab
	}
	if err := os.Remove(registryPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab registry: %w", err)
	}
	return nil
}

// Info describes a lab found on this machine (see Labs).
type Info struct {
	// Name is the lab name; its namespaces are named NetNSPrefix(Name)+….
	Name string
	// Dir is the lab directory ("" for namespaces no registered lab owns).
	Dir string
	// Hosts is the number of hosts recorded.
	Hosts int
	// Keep is set for labs meant to outlive their builder (lab up).
	Keep bool
	// Owner is the PID of the process that built the lab (0 with Keep or when unknown), and
	// OwnerAlive whether it still runs.
	Owner      int
	OwnerAlive bool
	// NetNS lists the lab's namespaces that exist.
	NetNS []string
	// Registered is false for namespaces with the ovsfab- prefix no registered lab owns
	// (left by a lab from before the registry, or with its registry entry removed by hand).
	Registered bool
}

// Orphaned reports whether the lab is a test lab whose builder has gone: what `lab gc` removes.
func (i Info) Orphaned() bool { return i.Registered && !i.Keep && !i.OwnerAlive }

// Labs lists the labs on this machine: every registered lab, and every name of ovsfab-*
// namespaces that no registered lab accounts for. Sorted by name.
func Labs() ([]Info, error) {
	byName := map[string]*Info{}
	entries, err := os.ReadDir(registryDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab registry: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkName(name) != nil {
			continue
		}
		st, err := readRegistry(name)
		if err != nil {
			continue
		}
		info := &Info{Name: name, Dir: st.Dir, Hosts: len(st.Hosts), Keep: st.Keep, Registered: true}
		if !st.Keep {
			info.Owner = st.OwnerPID
			info.OwnerAlive = st.OwnerPID > 0 && sameProcess(st.OwnerPID, st.OwnerStart)
		}
		byName[name] = info
	}
	for _, ns := range netnsWithPrefix("ovsfab-") {
		rest := strings.TrimPrefix(ns, "ovsfab-")
		name, _, ok := strings.Cut(rest, "-")
		if !ok || checkName(name) != nil {
			continue
		}
		info := byName[name]
		if info == nil {
			info = &Info{Name: name}
			byName[name] = info
		}
		info.NetNS = append(info.NetNS, ns)
	}
	out := make([]Info, 0, len(byName))
	for _, i := range byName {
		out = append(out, *i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// netnsWithPrefix lists the named network namespaces (/var/run/netns) starting with prefix.
func netnsWithPrefix(prefix string) []string {
	entries, _ := os.ReadDir(netnsDir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/var/run/netns"

// etcNetnsDir holds the per-namespace files `ip netns exec` bind-mounts (NAME/resolv.conf).
const etcNetnsDir = "/etc/netns"
