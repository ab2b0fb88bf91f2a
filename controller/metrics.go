package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// metrics are the controller's Prometheus series. Each controller has its own registry so
// tests can run several controllers in one process.
type metrics struct {
	reg      *prometheus.Registry
	syncs    prometheus.Counter
	failures prometheus.Counter
	duration prometheus.Histogram
	peers    *prometheus.GaugeVec
	tunnels  prometheus.Gauge
	routes   prometheus.Gauge
	// flowDumps counts the reconciles that dumped the bridge's flows to compare them: one
	// every --resync, and any whose flows differ from those last applied. The others
	// compare with the flows last applied, without asking ovs-vswitchd.
	flowDumps prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		syncs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "fabricd_reconcile_total", Help: "Reconcile runs."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fabricd_reconcile_errors_total", Help: "Reconcile runs that failed."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fabricd_reconcile_duration_seconds", Help: "Time of one reconcile.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		peers:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fabricd_peers", Help: "Peers by membership state."}, []string{"state"}),
		tunnels:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "fabricd_tunnels", Help: "Tunnel ports kept."}),
		routes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "fabricd_routes", Help: "Routes to peer subnets kept."}),
		flowDumps: prometheus.NewCounter(prometheus.CounterOpts{Name: "fabricd_reconcile_flow_dumps_total",
			Help: "Reconciles that dumped the bridge's flows to compare them (every --resync, and when the flows changed)."}),
	}
	m.reg.MustRegister(m.syncs, m.failures, m.duration, m.peers, m.tunnels, m.routes, m.flowDumps)
	return m
}

func (m *metrics) observe(start time.Time, err error) {
	m.syncs.Inc()
	if err != nil {
		m.failures.Inc()
	}
	m.duration.Observe(time.Since(start).Seconds())
}

func (m *metrics) setView(view []fabric.Peer, d fabric.Desired) {
	counts := map[fabric.PeerState]float64{fabric.PeerAlive: 0, fabric.PeerSuspect: 0, fabric.PeerDead: 0, fabric.PeerLeft: 0}
	for _, p := range view {
		counts[p.State]++
	}
	for st, n := range counts {
		m.peers.WithLabelValues(string(st)).Set(n)
	}
	ports := len(d.Tunnels)
	if d.FlowTunnel != "" {
		ports = 1 // one flow-based port for every peer
	}
	m.tunnels.Set(float64(ports))
	m.routes.Set(float64(len(d.Routes)))
}

// Registry is the Prometheus registry holding the controller's metrics.
func (c *Controller) Registry() *prometheus.Registry { return c.metrics.reg }
