// Command fabricd is the ovsfabric daemon: one per host. It finds its peers by gossip, claims a
// per-host container subnet, and keeps the OVS integration bridge, its tunnels and the host's
// routes converged. See docs/fabricd.md for flags and behaviour.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/apiserver"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/containers"
	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/internal/buildinfo"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/network"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/registry"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fabricd:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	cfg := config.DefaultConfig()
	var configFile string
	cmd := &cobra.Command{
		Use:           "fabricd",
		Short:         "ovsfabric daemon: gossip membership, per-host subnets, OVS tunnels and routes",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().String(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			final, err := config.Resolve(cmd.Flags(), cfg, configFile)
			if err != nil {
				return err
			}
			return run(cmd.Context(), final)
		},
	}
	cmd.SetVersionTemplate("fabricd {{.Version}}\n")
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (flags win over it)")
	config.Bind(cmd.Flags(), &cfg)
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func run(parent context.Context, cfg config.Config) error {
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	s, err := cfg.Validate()
	if err != nil {
		return err
	}
	if err := detectUnderlay(&s); err != nil {
		return err
	}
	if s.APIGroup != "" {
		if _, err := apiserver.LookupGroup(s.APIGroup); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sw, err := ovsdb.Dial(dialCtx, s.OVSDB, ovsdb.WithLogger(log))
	cancel()
	if err != nil {
		return ovsdbUnreachable(s.OVSDB, err)
	}
	defer sw.Close()
	if s.DatapathType, err = detectDatapath(ctx, s.Datapath, sw); err != nil {
		return err
	}
	log = log.With("node", s.Name)
	log.Info("starting", "underlay", s.Advertise, "underlay_mtu", s.UnderlayMTU, "datapath", s.DatapathType, "tunnel", s.TunnelType, "tunnel_mode", s.TunnelModeValue, "encryption", s.EncryptionMode, "cluster_cidr", s.Cluster)

	var resolvers []endpoint.Resolver
	if s.DockerHost != "" {
		resolvers = append(resolvers, containers.Engine{Kind: "docker", Host: s.DockerHost})
	}
	if s.PodmanHost != "" {
		resolvers = append(resolvers, containers.Engine{Kind: "podman", Host: s.PodmanHost})
	}
	eps := endpoint.New(s, sw, endpoint.HostPlumbing{}, log, resolvers...)
	of := controller.NewOFSwitch(s.Bridge, s.OVSRundir, os.Getenv("OVS_RUNDIR"), s.OVSDB)
	ctrl := controller.New(s, sw, netplumb.HostNet{}, of, eps, log)
	eps.SetLoop(ctrl)
	reg, send, err := newRegistry(ctx, sw, s.Name, log)
	if err != nil {
		return err
	}
	// Before Init, which publishes the endpoints a previous run left, before gossip joins.
	ctrl.SetRegistry(reg)
	// The networks a previous run knew, back in the registry before gossip joins, so the
	// first sync serves them as before.
	book := network.NewBook(network.Config{
		Node: s.Name, Default: network.Network{Name: network.Default, Subnet: s.Cluster, HostBits: s.SubnetPrefix},
		Registry: reg, Store: sw, Logger: log.With("component", "networks"),
	})
	defer book.Close()
	if _, err := book.Load(ctx); err != nil {
		return fmt.Errorf("load networks: %w", err)
	}
	ctrl.SetNetworks(book)
	dns, err := startDNS(s, ctrl, log)
	if err != nil {
		return err
	}
	defer dns.close()
	wg, err := startWireGuard(s, ctrl, log)
	if err != nil {
		return err
	}
	if wg != nil {
		defer wg.Close()
	}
	if err := ctrl.Init(ctx); err != nil {
		return err
	}
	join := s.Join
	for _, a := range ctrl.RejoinAddrs() {
		if !slices.Contains(join, a) {
			join = append(join, a)
		}
	}
	members, err := peers.Start(ctx, peers.Config{
		Name: s.Name, BindAddr: s.Advertise, AdvertiseAddr: s.Advertise, Port: s.GossipPort,
		Join: join, SecretKey: s.GossipKey, KeyringFile: s.KeyringPath, Meta: ctrl.Meta(), Logger: log.With("component", "gossip"),
		Forget: s.DeadPeerGrace + time.Minute, Registry: reg,
	})
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	send.Set(members)
	ctrl.SetMembership(members)
	// A background join that finds this node's name taken by a live member ends the run.
	fatal := make(chan error, 1)

	// leave is shared by the API and --leave-on-exit: announce the departure, withdraw this
	// node's tunnels and routes, then stop.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		_ = reg.Run(runCtx)
	}()
	defer func() { stopRun(); <-regDone }()
	var leaveOnce sync.Once
	var leaveErr error
	leave := func(context.Context) error {
		leaveOnce.Do(func() {
			log.Info("leaving the fabric")
			leaveErr = members.Leave(5 * time.Second)
			stopRun()
		})
		return leaveErr
	}
	srv := apiserver.NewServer(ctrl, eps, log, leave)
	srv.SetKeyring(members)
	srv.SetNetworks(networksAPI{ctrl})
	serveWireGuard(s, ctrl, srv)
	dns.serve(runCtx, ctrl, reg, srv)
	go onNetworkChanges(runCtx, reg, ctrl.Kick)
	if err := srv.SetGroup(s.APIGroup); err != nil {
		members.Shutdown()
		return err
	}
	if err := srv.Listen(s.APISocket); err != nil {
		members.Shutdown()
		return err
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("api server", "err", err)
		}
	}()
	if err := startDockerPlugin(runCtx, s, ctrl, eps, sw, reg, log); err != nil {
		members.Shutdown()
		return fmt.Errorf("docker plugin: %w", err)
	}
	var metricsSrv *http.Server
	if s.MetricsAddr != "" {
		metricsSrv = &http.Server{Addr: s.MetricsAddr, Handler: promhttp.HandlerFor(ctrl.Registry(), promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
	}

	go func() {
		select {
		case err := <-members.Fatal():
			log.Error("refusing to take part", "err", err)
			fatal <- err
			stopRun()
		case <-runCtx.Done():
		}
	}()
	runErr := ctrl.Run(runCtx)
	select {
	case err := <-fatal:
		runErr = fmt.Errorf("gossip: %w", err)
	default:
	}
	left := runCtx.Err() != nil && ctx.Err() == nil && runErr == nil // stopped by leave, not by a signal
	if ctx.Err() != nil && s.LeaveOnExit {
		_ = leave(context.Background())
		left = true
	}
	if errors.Is(runErr, controller.ErrSubnetConflict) {
		log.Error("refusing to join", "err", runErr)
		_ = members.Leave(2 * time.Second)
	}
	if left {
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := ctrl.Withdraw(wctx); err != nil {
			log.Error("withdraw tunnels and routes", "err", err)
		}
		cancel()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutCtx)
	}
	_ = members.Shutdown()
	log.Info("stopped", "left", left)
	return runErr
}

// onNetworkChanges calls fn whenever gossip brings a change of the networks (definitions,
// slices, removals) until ctx ends: the loop syncs at once rather than at the next resync,
// and the Docker networks follow.
func onNetworkChanges(ctx context.Context, reg *registry.Registry, fn func()) {
	ch, cancel := reg.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case ks, ok := <-ch:
			if !ok {
				return
			}
			if ks&network.Kinds != 0 {
				fn()
			}
		}
	}
}

// newRegistry creates the registry that carries this host's records fabric-wide, at the
// next incarnation persisted in OVSDB. Its sender sends through the membership once the
// caller has set it.
func newRegistry(ctx context.Context, sw *ovsdb.Client, name string, log *slog.Logger) (*registry.Registry, *peers.Sender, error) {
	inc, err := controller.NextIncarnation(ctx, sw)
	if err != nil {
		return nil, nil, err
	}
	rlog := log.With("component", "registry")
	send := &peers.Sender{}
	reg, err := registry.New(registry.Config{
		Origin: name, Incarnation: inc, Sender: send, NumNodes: send.NumNodes, RetransmitMult: peers.RetransmitMult,
		Logger: rlog,
		OnIncarnation: func(inc uint32) {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := controller.SaveIncarnation(sctx, sw, inc); err != nil {
				rlog.Error("registry moved to a new incarnation", "incarnation", inc, "err", err)
				return
			}
			rlog.Info("registry moved to a new incarnation", "incarnation", inc)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	rlog.Debug("registry started", "incarnation", inc)
	return reg, send, nil
}

// detectUnderlay fills the advertise address and the underlay MTU from the host.
func detectUnderlay(s *config.Settings) error {
	if !s.Advertise.IsValid() {
		_, src, _, err := netplumb.DefaultRoute(s.Cluster)
		if err != nil {
			return fmt.Errorf("find the underlay address (set --advertise-addr): %w", err)
		}
		s.Advertise = src
	}
	_, mtu, err := netplumb.LinkByAddr(s.Advertise)
	if err != nil {
		return fmt.Errorf("--advertise-addr %s: %w", s.Advertise, err)
	}
	s.UnderlayMTU = mtu
	if s.Advertise == (netip.Addr{}) {
		return fmt.Errorf("no underlay address")
	}
	return nil
}

// detectDatapath resolves --datapath auto: the kernel datapath when the openvswitch module is
// loaded, the userspace one otherwise.
func detectDatapath(ctx context.Context, want string, sw *ovsdb.Client) (fabric.Datapath, error) {
	if want != config.DatapathAuto {
		return fabric.ParseDatapath(want)
	}
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return fabric.DatapathSystem, nil
	}
	types, err := sw.DatapathTypes(ctx)
	if err == nil && len(types) > 0 {
		for _, t := range types {
			if t == fabric.DatapathNetdev.String() {
				return fabric.DatapathNetdev, nil
			}
		}
		return "", fmt.Errorf("no openvswitch kernel module and ovs-vswitchd offers no netdev datapath (has %v)", types)
	}
	return fabric.DatapathNetdev, nil
}

// hintError is an error reworded for the operator that still unwraps to its cause.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// ovsdbUnreachable says once, in plain words, that OVSDB at endpoint did not answer and what
// to check. libovsdb's own error repeats the endpoint at every layer; its root cause (the
// system call's error, or the timeout) is what the operator needs.
func ovsdbUnreachable(endpoint string, err error) error {
	cause := err.Error()
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		cause = errno.Error()
	case errors.Is(err, context.DeadlineExceeded):
		cause = "no answer in time"
	default:
		// libovsdb formats its wrapped errors with %v: keep the innermost part.
		if i := strings.LastIndex(cause, ": "); i >= 0 {
			cause = cause[i+2:]
		}
	}
	return &hintError{
		msg: fmt.Sprintf("cannot reach OVSDB at %s (%s): is ovsdb-server running? (set its socket with --ovsdb)", endpoint, cause),
		err: err,
	}
}
