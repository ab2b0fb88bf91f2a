package endpoint

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
)

// TargetKind says how an attach TARGET names a container.
type TargetKind int

// Kinds of attach targets.
const (
	// TargetContainer is a Docker or Podman container name or ID.
	TargetContainer TargetKind = iota + 1
	// TargetPID is pid:PID, the network namespace of a process.
	TargetPID
	// TargetNetNS is a network namespace path (/var/run/netns/NAME, /proc/PID/ns/net).
	TargetNetNS
)

// TargetSpec is a parsed attach TARGET, checked for form only: whether it exists is for
// resolve to find out.
type TargetSpec struct {
	Kind TargetKind
	// Name is the container name or ID (TargetContainer) or the cleaned path (TargetNetNS).
	Name string
	// PID is the process ID of TargetPID.
	PID int
}

// Limits of attach targets: Linux's highest pid_max and PATH_MAX; Docker names are short.
const (
	maxPID        = 1 << 22
	maxTargetPath = 4096
	maxTargetName = 253
)

// containerName is what Docker and Podman accept as a container name or ID.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ParseTarget parses an attach TARGET (surrounding white space ignored): a container name or
// ID, pid:PID, or an absolute network namespace path. The error is an api.ErrInvalid (400).
func ParseTarget(s string) (TargetSpec, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return TargetSpec{}, api.Errorf(api.ErrInvalid, "no target: give a container name or ID, pid:PID, or a netns path")
	case strings.HasPrefix(s, "pid:"):
		pid, err := strconv.Atoi(strings.TrimPrefix(s, "pid:"))
		if err != nil || pid <= 0 || pid > maxPID {
			return TargetSpec{}, api.Errorf(api.ErrInvalid, "target %q: pid must be a positive number up to %d", s, maxPID)
		}
		return TargetSpec{Kind: TargetPID, PID: pid}, nil
	case strings.HasPrefix(s, "/"):
		if len(s) > maxTargetPath || strings.ContainsRune(s, 0) {
			return TargetSpec{}, api.Errorf(api.ErrInvalid, "target: netns path is longer than %d bytes or holds a NUL byte", maxTargetPath)
		}
		return TargetSpec{Kind: TargetNetNS, Name: filepath.Clean(s)}, nil
	case len(s) > maxTargetName || !containerName.MatchString(s):
		return TargetSpec{}, api.Errorf(api.ErrInvalid, "target %.80q: not a container name or ID ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most %d bytes), pid:PID or an absolute netns path", s, maxTargetName)
	}
	return TargetSpec{Kind: TargetContainer, Name: s}, nil
}
