# ovsfabric — run as root on a Debian 12 machine. `make test` and `make demo` install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
# The binaries record their commit (fabricd --version) even where GOFLAGS says -buildvcs=false.
BUILDFLAGS ?= -buildvcs=auto
BIN := bin
# What the tests and the lab need from Debian. docker.io and busybox-static give the lab real
# containers (an image imported from a rootfs: no registry here); podman drives the CNI plugin
# as a real runtime (e2e TestCNIPodman).
APT_PKGS := openvswitch-switch openvswitch-common iproute2 iputils-ping iperf3 ethtool nftables \
	tcpdump procps kmod ca-certificates docker.io busybox-static podman
TEST_TIMEOUT ?= 28m
HOSTS ?= 3
TUNNEL ?= vxlan

.PHONY: all deps build install package test unit lint vet fuzz demo demo-down bench clean

all: build

# deps installs only what is missing. policy-rc.d keeps Debian's maintainer scripts from starting
# openvswitch-switch or docker in the root namespace: the lab starts its own daemons per host.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  own_policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; rc=$$?; \
	  [ -n "$$own_policy" ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi

build:
	$(GO) build $(BUILDFLAGS) -o $(BIN)/ ./cmd/fabricd ./cmd/fabricctl ./cmd/ovsfabric-wg ./lab/cmd/lab
	$(GO) build $(BUILDFLAGS) -o $(BIN)/fabric-demo ./lab/cmd/demo
	$(GO) build $(BUILDFLAGS) -o $(BIN)/ovsfabric-cni ./cmd/ovsfabric-cni

# install puts fabricd, fabricctl and ovsfabric-wg (the userspace WireGuard device process
# fabricd starts beside itself) in $(PREFIX)/bin, the CNI plugin in $(CNI_BIN_DIR)
# as "ovsfabric" (its CNI type), fabricd.service in $(SYSTEMD_DIR) and, when absent,
# /etc/ovsfabric/fabricd.yaml; running it again replaces all but the configuration.
PREFIX ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin
# SYSTEMD_DIR receives fabricd.service (enable it with systemctl enable --now fabricd).
SYSTEMD_DIR ?= /etc/systemd/system
install: build
	install -D -m 0755 $(BIN)/fabricd $(DESTDIR)$(PREFIX)/bin/fabricd
	install -D -m 0755 $(BIN)/fabricctl $(DESTDIR)$(PREFIX)/bin/fabricctl
	install -D -m 0755 $(BIN)/ovsfabric-wg $(DESTDIR)$(PREFIX)/bin/ovsfabric-wg
	install -D -m 0755 $(BIN)/ovsfabric-cni $(DESTDIR)$(CNI_BIN_DIR)/ovsfabric
	install -d $(DESTDIR)$(SYSTEMD_DIR)
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/fabricd.service > $(DESTDIR)$(SYSTEMD_DIR)/fabricd.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_DIR)/fabricd.service
	[ -e $(DESTDIR)/etc/ovsfabric/fabricd.yaml ] || install -D -m 0644 packaging/fabricd.yaml $(DESTDIR)/etc/ovsfabric/fabricd.yaml

# package builds dist/ovsfabric_VERSION_ARCH.deb (binaries in /usr/bin, the CNI plugin, the
# systemd unit, /etc/ovsfabric/fabricd.yaml as a configuration file) with nfpm, run from the Go
# module proxy: nothing is added to go.mod.
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
VERSION ?= 0.0.0~git$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
package: build
	sed 's|@PREFIX@|/usr|g' packaging/fabricd.service > $(BIN)/fabricd.service
	mkdir -p dist
	VERSION='$(VERSION)' GOARCH=$$($(GO) env GOARCH) $(NFPM) package -f packaging/nfpm.yaml -p deb -t dist/

vet:
	$(GO) vet ./...

lint: vet
	$(GO) tool staticcheck ./...

# unit runs the tests that need no root (lab tests skip themselves without root).
unit:
	$(GO) test -count=1 ./...

# test is what CI runs: deps, vet, staticcheck, unit and lab tests (lab tests need root and fail,
# not skip, under CI=true when the lab cannot start).
test: deps build lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -p 1 ./...

# fuzz runs every fuzz target (decoders of gossip, API requests, attach targets, the YAML config)
# for FUZZTIME each; `make test` runs only their seed corpora. A crasher is saved under the
# package's testdata/fuzz/ and then runs as a regular test case.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$fn ($$pkg, $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# demo builds a multi-host lab, runs fabricd on every host, attaches containers and shows the
# cross-host ping matrix. KEEP=1 keeps the lab; `make demo-down` removes it.
demo: deps build
	HOSTS=$(HOSTS) TUNNEL=$(TUNNEL) KEEP=$(KEEP) DIR=.lab/demo BIN=$(BIN) ./$(BIN)/fabric-demo

demo-down:
	./$(BIN)/lab down --dir .lab/demo

# bench runs the benchmark suite in the lab and rewrites docs/benchmarks.md.
bench: deps build
	$(GO) build $(BUILDFLAGS) -o $(BIN)/fabric-bench ./lab/cmd/bench
	./$(BIN)/fabric-bench --out docs/benchmarks.md

clean:
	rm -rf $(BIN) dist
