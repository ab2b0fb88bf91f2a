package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// cniContainers is how many containers the CNI section adds one by one (and deletes), and
// cniParallel how many it then adds at once.
const (
	cniContainers = 50
	cniParallel   = 20
)

// cniSection measures the CNI plugin as a runtime meets it: cnitool (v1.3.1, the version
// go.mod pins) runs ADD of cniContainers network namespaces one by one against fabricd on h1
// of a 2-host fabric, then ADD of cniParallel more at once, then DEL of them all one by one;
// each figure is the whole cnitool run (process start, plugin, fabricd's attach or detach).
func (s *suite) cniSection(ctx context.Context, secs map[string]*Section) {
	sec := secs["cni"]
	var r cniResult
	defer func() { s.cniReport(sec, r) }()
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
	for i := range cniContainers + cniParallel {
		path, err := l.AddNetNS(ctx, n.Host, fmt.Sprintf("k%03d", i))
		if err != nil {
			sec.Err = err
			return
		}
		paths = append(paths, path)
	}
	// fabricd logs each attach's phases and each request's time; the lines of each mode
	// are told apart by offset.
	logFile := n.Proc.LogFile()
	fromLog := func(off int64) ([]attachPhases, []loggedCall) {
		b, err := readLogFrom(logFile, off)
		if err != nil {
			s.logf("cni", "fabricd's log: %v", err)
		}
		return parseAttachLog(b), parseCallLog(b, "api request", map[string]string{"path": "/v1/cni/add", "status": "200"}, "")
	}
	off := logSize(logFile)
	cpu0 := sampleAttachCPU(n.Proc.PID(), n.Host)
	for _, p := range paths[:cniContainers] {
		ms, err := cnitool("add", p)
		if err != nil {
			sec.Err = err
			return
		}
		r.seq.adds = append(r.seq.adds, ms)
	}
	r.seq.phases, r.seq.api = fromLog(off)
	cpu1 := sampleAttachCPU(n.Proc.PID(), n.Host)
	r.seq.cpu = describeCPU(cpu0, cpu1, cniContainers)
	s.logf("cni", "%d ADDs one by one: p50 %.1f ms", len(r.seq.adds), Median(r.seq.adds))
	off = logSize(logFile)
	par := make([]float64, cniParallel)
	errs := make([]error, cniParallel)
	var wg sync.WaitGroup
	for i, p := range paths[cniContainers:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			par[i], errs[i] = cnitool("add", p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		sec.Err = fmt.Errorf("ADD at once: %w", err)
		return
	}
	r.par.adds = par
	r.par.phases, r.par.api = fromLog(off)
	r.par.cpu = describeCPU(cpu1, sampleAttachCPU(n.Proc.PID(), n.Host), cniParallel)
	s.logf("cni", "%d ADDs at once: p50 %.1f ms", len(r.par.adds), Median(r.par.adds))
	for _, p := range paths {
		ms, err := cnitool("del", p)
		if err != nil {
			sec.Err = err
			return
		}
		r.dels = append(r.dels, ms)
	}
	s.logf("cni", "%d DELs: p50 %.1f ms", len(r.dels), Median(r.dels))
}

// cniResult is what the CNI section measured.
type cniResult struct {
	seq, par cniAdds
	dels     []float64
}

// cniAdds are the ADDs of one mode: cnitool's whole runs (ms), fabricd's attach phases and
// its time answering the plugin's request (from its log), and the CPU it and ovs-vswitchd
// spent.
type cniAdds struct {
	adds   []float64
	phases []attachPhases
	api    []loggedCall
	cpu    string
}

func (s *suite) cniReport(sec *Section, r cniResult) {
	sec.Method = fmt.Sprintf("On h1 of a 2-host VXLAN fabric (%s): cnitool v1.3.1 runs ADD for %d container "+
		"namespaces (made beforehand, not timed) one by one, then ADD for %d more at once (concurrent cnitool runs), "+
		"then DEL for each one by one, with a 1.1.0 configuration of the plugin `ovsfabric`. Each figure is one whole "+
		"cnitool run: its process start, the plugin's, the request to fabricd and fabricd's attach (veth, address, OVS "+
		"port, flows) or detach; fabricd's own share comes from its log (the API's time per request, the attach's "+
		"phases).", s.mainPipelineName(), cniContainers, cniParallel)
	t := Table{Header: []string{"command", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms", "fabricd's answer p50 / p99 ms"}}
	for _, m := range []struct {
		name string
		a    cniAdds
	}{{"ADD, one by one", r.seq}, {fmt.Sprintf("ADD, %d at once", cniParallel), r.par}} {
		a, api := Summarize(m.a.adds), Summarize(callMillis(m.a.api))
		t.AddRow(m.name, fmt.Sprint(a.N), num(a.Median), num(a.P90), num(a.P99), num(a.Max), num(api.Median)+" / "+num(api.P99))
	}
	d := Summarize(r.dels)
	t.AddRow("DEL, one by one", fmt.Sprint(d.N), num(d.Median), num(d.P90), num(d.P99), num(d.Max), "")
	sec.Tables = append(sec.Tables, t)
	// Targets of issue 15 (attach fast path), as for fabricctl's attach.
	for _, m := range []struct {
		name     string
		a        cniAdds
		p50, p99 float64
	}{{"ADD one by one", r.seq, 50, 100}, {fmt.Sprintf("ADD %d at once", cniParallel), r.par, 200, 400}} {
		a := Summarize(m.a.adds)
		limit := cniLimit(m.a)
		for _, v := range []Verdict{
			{Target: fmt.Sprintf("%s: p50 < %s ms", m.name, num(m.p50)), Measured: num(a.Median) + " ms", Status: Check(a.Median, a.Median < m.p50)},
			{Target: fmt.Sprintf("%s: p99 < %s ms", m.name, num(m.p99)), Measured: num(a.P99) + " ms", Status: Check(a.P99, a.P99 < m.p99)},
		} {
			switch v.Status {
			case NotMeasured:
				v.Measured, v.Limit = "n/a", "not measured (see above)"
			case Missed:
				v.Limit = limit
			}
			sec.Verdicts = append(sec.Verdicts, v)
		}
	}
}

// cniLimit says where an ADD's time went: fabricd's answer to the plugin (its log) against
// the whole cnitool run, the rest being the two process starts and the request, and
// fabricd's attach phases.
func cniLimit(a cniAdds) string {
	api := callMillis(a.api)
	out := fmt.Sprintf("fabricd answers the plugin's request in p50 %s / p99 %s ms; the rest of the run (cnitool's and "+
		"the plugin's process starts, the request and the result) is the difference, %s ms at p50; ",
		num(Median(api)), num(Summarize(api).P99), num(Median(a.adds)-Median(api)))
	out += explainPhases(a.phases)
	if a.cpu != "" {
		out += "; " + a.cpu
	}
	return out
}
