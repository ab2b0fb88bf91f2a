package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// cniContainers is how many containers the CNI section adds and deletes, one by one.
const cniContainers = 50

// cniSection measures the CNI plugin as a runtime meets it: cnitool (v1.3.1, the version
// go.mod pins) runs ADD, then DEL, of cniContainers network namespaces one by one against
// fabricd on h1 of a 2-host fabric; each figure is the whole cnitool run (process start,
// plugin, fabricd's attach or detach).
func (s *suite) cniSection(ctx context.Context, secs map[string]*Section) {
	sec := secs["cni"]
	var adds, dels []float64
	defer func() { s.cniReport(sec, adds, dels) }()
	kit := filepath.Join(s.cfg.Work, "cni-bin")
	for _, b := range [][2]string{{"ovsfabric", "./cmd/ovsfabric-cni"}, {"cnitool", "github.com/containernetworking/cni/cnitool"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(kit, b[0]), b[1])
		cmd.Dir = s.cfg.Repo
		if out, err := cmd.CombinedOutput(); err != nil {
			sec.Err = fmt.Errorf("build %s: %w\n%s", b[1], err, out)
			return
		}
	}
	l, err := s.up(ctx, "cni", 2, false)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(s.mainPipeline())})
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			sec.Err = err
			return
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		sec.Err = err
		return
	}
	n := f.Node("h1")
	name := "ofb-bench-" + l.Name
	defer func() {
		paths, _ := filepath.Glob("/var/lib/cni/results/" + name + "*")
		for _, p := range paths {
			os.Remove(p)
		}
	}()
	confDir := filepath.Join(s.cfg.Work, "cni-conf")
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name,
		"plugins": []map[string]any{{"type": "ovsfabric", "network": "default", "socket": n.Socket}}})
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		sec.Err = err
		return
	}
	if err := os.WriteFile(filepath.Join(confDir, name+".conflist"), conf, 0o644); err != nil {
		sec.Err = err
		return
	}
	cnitool := func(cmd, netns string) (float64, error) {
		c := exec.CommandContext(ctx, filepath.Join(kit, "cnitool"), cmd, name, netns)
		c.Env = append(os.Environ(), "CNI_PATH="+kit, "NETCONFPATH="+confDir)
		t0 := time.Now()
		out, err := c.CombinedOutput()
		ms := float64(time.Since(t0)) / float64(time.Millisecond)
		if err != nil {
			return ms, fmt.Errorf("cnitool %s %s: %w: %s", cmd, filepath.Base(netns), err, out)
		}
		return ms, nil
	}
	var paths []string
	for i := range cniContainers {
		path, err := l.AddNetNS(ctx, n.Host, fmt.Sprintf("k%03d", i))
		if err != nil {
			sec.Err = err
			return
		}
		paths = append(paths, path)
	}
	for _, p := range paths {
		ms, err := cnitool("add", p)
		if err != nil {
			sec.Err = err
			return
		}
		adds = append(adds, ms)
	}
	s.logf("cni", "%d ADDs: p50 %.1f ms", len(adds), Median(adds))
	for _, p := range paths {
		ms, err := cnitool("del", p)
		if err != nil {
			sec.Err = err
			return
		}
		dels = append(dels, ms)
	}
	s.logf("cni", "%d DELs: p50 %.1f ms", len(dels), Median(dels))
}

func (s *suite) cniReport(sec *Section, adds, dels []float64) {
	sec.Method = fmt.Sprintf("On h1 of a 2-host VXLAN fabric (%s): cnitool v1.3.1 runs ADD for %d container "+
		"namespaces (made beforehand, not timed) one by one, then DEL for each, with a 1.1.0 configuration of the "+
		"plugin `ovsfabric`. Each figure is one whole cnitool run: its process start, the plugin's, the request "+
		"to fabricd and fabricd's attach (veth, address, OVS port, flows) or detach.", s.mainPipelineName(), cniContainers)
	a, d := Summarize(adds), Summarize(dels)
	t := Table{Header: []string{"command", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms"}}
	t.AddRow("ADD", fmt.Sprint(a.N), num(a.Median), num(a.P90), num(a.P99), num(a.Max))
	t.AddRow("DEL", fmt.Sprint(d.N), num(d.Median), num(d.P90), num(d.P99), num(d.Max))
	sec.Tables = append(sec.Tables, t)
	v := Verdict{Target: "ADD p50 < 100 ms", Measured: num(a.Median) + " ms", Status: Check(a.Median, a.Median < 100)}
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	case Missed:
		v.Limit = "each ADD starts cnitool and the plugin as processes, then fabricd attaches (see Attach for its phases)"
	}
	sec.Verdicts = append(sec.Verdicts, v)
}
