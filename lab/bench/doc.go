// Package bench is ovsfabric's benchmark suite. It builds labs (package lab), runs fabricd on
// them (package lab/fabriclab) and measures, side by side in one run: data path throughput
// and latency (the underlay via br-phy, plain host ↔ host without OVS, a kernel VXLAN + Linux
// bridge baseline, and the fabric over GRE and VXLAN in each pipeline fabricd offers),
// convergence of a joining host, failure detection, attach latency, OVSDB and gossip scale,
// fabricd's memory, and the planner's cost. Run renders the results, with every target and
// whether it was met, as Markdown (docs/benchmarks.md); the CLI is lab/cmd/bench (`make bench`).
//
// Every figure is a distribution over repeated trials (median and spread), every ratio is
// computed from measurements of the same run, and what could not be measured is reported as
// such, never estimated. Every lab is torn down when its phase ends, also on failure and on
// cancellation, and every external command runs under a timeout.
package bench
