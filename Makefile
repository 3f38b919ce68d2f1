# criserver build, run, test and benchmark entry points.

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Pure-Go registry stack: no gpgme, btrfs or devicemapper (cgo) dependencies.
GO_TAGS := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/criserver
# Extra daemon flags for `make run`, e.g. RUN_FLAGS="-v=4".
RUN_FLAGS ?= -v=2
E2E_TIMEOUT ?= 60m

export GOFLAGS := -tags=$(subst $() ,$(comma),$(GO_TAGS))
comma := ,

.PHONY: build install run test test-unit test-fuzz test-e2e test-cluster test-critest test-node-e2e lint bench soak deps clean \
	cluster cluster-down cluster-load

# criserver-infra is the PID 1 of pods that share one PID namespace; the
# daemon looks for it beside its own binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/criserver
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)-infra ./cmd/criserver-infra

# Installs the binaries and a systemd unit (not enabled: `systemctl enable
# --now criserver` starts it). DESTDIR stages the files elsewhere.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/criserver
	install -D -m 0755 $(BIN)-infra $(DESTDIR)$(PREFIX)/bin/criserver-infra
	mkdir -p $(DESTDIR)/etc/systemd/system
	sed 's#/usr/local/bin/#$(PREFIX)/bin/#' contrib/systemd/criserver.service >$(DESTDIR)/etc/systemd/system/criserver.service

deps:
	bash hack/install-deps.sh

# Installs what is missing, builds, and runs the daemon in the foreground
# with built-in defaults (root required: namespaces, mounts, cgroups).
run: deps build
	./$(BIN) $(RUN_FLAGS)

# Lint, unit tests (race detector on), a bounded run of each fuzz target,
# then end-to-end tests (root required), critest's validation suite among
# them, the CI subset of Kubernetes' node conformance tests, and the
# cluster suite.
test: lint test-unit test-fuzz test-e2e test-node-e2e test-cluster

# golangci-lint at the version hack/tools/golangci-lint pins, built once per
# version into TOOLS_CACHE.
TOOLS_CACHE   ?= /var/cache/criserver
LINT_VERSION  := $(shell awk '/golangci\/golangci-lint\/v2 v/ {print $$NF}' hack/tools/golangci-lint/go.mod)
GOLANGCI_LINT := $(TOOLS_CACHE)/golangci-lint-$(LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT):
	cd hack/tools/golangci-lint && GOFLAGS= CGO_ENABLED=0 $(GO) build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

FUZZTIME ?= 30s
# New inputs are minimized before they count; the default minute would
# spend a short run minimizing instead of fuzzing.
FUZZMINIMIZETIME ?= 3s
# package:target pairs; `go test -fuzz` takes one target at a time.
FUZZ_TARGETS := ./oci:FuzzGenerateSpec ./imagestore:FuzzUnpack

test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) "$${t%%:*}"; \
	done

# Test images' programs live under test/e2e/testdata, which ./... leaves out.
test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /test/cluster) ./test/e2e/testdata/critest/...

# The suite's daemons run pods of the default handler with crun where it
# runs here (else runc); the runtime tests run again with runc behind the
# default handler, so that what they check holds for both (about 100 s).
E2E_RUNTIME_TESTS := ^(TestContainer|TestStream|TestPodRemovalRemovesContainers|TestOrphanContainerRemovedAtStart|TestCrash$$|TestRestart)

test-e2e: build
	$(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./test/e2e/...
	CRISERVER_E2E_DEFAULT_HANDLER=runc $(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) -run '$(E2E_RUNTIME_TESTS)' ./test/e2e/

# The cluster suite (test/cluster): one `make cluster NODES=2` for all of
# its tests (driven with kubectl; most run in parallel), then `make
# cluster-down` and a check that the host is as it was. CRISERVER_CLUSTER_KEEP=1 reuses a cluster
# that is up and leaves it up; CLUSTER_TEST_FLAGS=-v shows each test.
CLUSTER_TEST_TIMEOUT ?= 40m
CLUSTER_TEST_FLAGS ?=

test-cluster: build
	$(GO) test -count=1 -timeout $(CLUSTER_TEST_TIMEOUT) -parallel 8 $(CLUSTER_TEST_FLAGS) ./test/cluster/

# cri-tools' critest validation suite (TestCritest in test/e2e, which
# test-e2e runs too) against a daemon of its own. critest and crictl are
# built once per cri-tools version (hack/critest, cached under
# /var/cache/criserver); the images critest pulls are built from Debian
# packages and served from a local registry under their upstream names.
# BENCH=1 also runs critest's benchmarks and prints their medians;
# CRITEST_FOCUS='metrics operations' runs only the specs that regular
# expression matches.
#
# RUNTIME=containerd runs test-critest and test-node-e2e against Debian's
# containerd instead (installed by hack/containerd/install.sh if missing,
# started by the test with its own directories and a hosts.toml per
# upstream registry, stopped afterwards), for the README's side-by-side
# table; results go to the same directories with a -containerd suffix.
RUNTIME ?= criserver
ifeq ($(RUNTIME),containerd)
RUNTIME_SETUP  := bash hack/containerd/install.sh &&
RUNTIME_ENV    := CRISERVER_CONTAINERD=1
RUNTIME_TEST   := Containerd
RESULTS_SUFFIX := -containerd
else ifneq ($(RUNTIME),criserver)
$(error RUNTIME=$(RUNTIME): want criserver or containerd)
endif

CRITEST_RESULTS ?= /var/tmp/criserver-critest$(RESULTS_SUFFIX)
BENCH ?=
CRITEST_FOCUS ?=

test-critest: build
	$(RUNTIME_SETUP) dir=$$(bash hack/critest/build.sh) && \
	CRITEST_DIR=$$dir CRITEST_RESULTS=$(CRITEST_RESULTS) CRITEST_BENCHMARK=$(BENCH) CRITEST_FOCUS='$(CRITEST_FOCUS)' \
	CRISERVER_BINARY=$(CURDIR)/$(BIN) $(RUNTIME_ENV) \
		$(GO) test -count=1 -p 1 -timeout 60m -run '^TestCritest$(RUNTIME_TEST)$$' -v ./test/e2e/

# Kubernetes' node e2e suite (TestNodeE2E in test/e2e) with a real kubelet
# against a daemon of its own: [NodeConformance] specs that are not flaky,
# slow, serial or disruptive, the CI subset unless FULL=1 (NODE_E2E_FOCUS
# picks others), in NODE_E2E_PROCS parallel ginkgo processes (default 4).
# e2e_node.test, the kubelet, agnhost and the ginkgo CLI are built once per
# Kubernetes version (hack/node-e2e, cached under /var/cache/criserver;
# about 20 minutes cold on 2 cores).
NODE_E2E_RESULTS ?= /var/tmp/criserver-node-e2e$(RESULTS_SUFFIX)
NODE_E2E_FOCUS ?=
NODE_E2E_PROCS ?=
FULL ?=

test-node-e2e: build
	$(RUNTIME_SETUP) dir=$$(bash hack/node-e2e/build.sh) && \
	CRISERVER_NODE_E2E=1 NODE_E2E_DIR=$$dir NODE_E2E_RESULTS=$(NODE_E2E_RESULTS) NODE_E2E_PROCS=$(NODE_E2E_PROCS) \
	NODE_E2E_FOCUS='$(if $(FULL),all,$(NODE_E2E_FOCUS))' CRISERVER_BINARY=$(CURDIR)/$(BIN) $(RUNTIME_ENV) \
		$(GO) test -count=1 -p 1 -timeout 90m -run '^TestNodeE2E$(RUNTIME_TEST)$$' -v ./test/e2e/

# A local Kubernetes cluster on criserver (hack/cluster/cluster.sh, which
# the README's "Local cluster" section describes): NODES nodes, each in a
# network namespace of its own; returns once every node is Ready and the
# cluster DNS answers. The Kubernetes, etcd and CoreDNS binaries are built
# once per version into /var/cache/criserver. CLUSTER_DIR holds everything
# (kubeconfig, bin/kubectl, logs); cluster-down removes it all.
NODES ?= 1
CLUSTER_DIR ?= /var/lib/criserver-cluster
IMAGE ?=

cluster: deps build
	CLUSTER_DIR=$(CLUSTER_DIR) NODES=$(NODES) CRISERVER_BIN=$(CURDIR)/$(BIN) bash hack/cluster/cluster.sh up

cluster-down:
	CLUSTER_DIR=$(CLUSTER_DIR) bash hack/cluster/cluster.sh down

cluster-load:
	@test -n "$(IMAGE)" || { echo "cluster-load: IMAGE=archive.tar or IMAGE=reference" >&2; exit 2; }
	CLUSTER_DIR=$(CLUSTER_DIR) bash hack/cluster/cluster.sh load $(IMAGE)

# Benchmark (hack/bench): criserver and containerd's CRI plugin through the
# same workload, alternately, in one run. Installs containerd, debootstrap and
# a C compiler (for the pause image) if missing; starts a local registry and
# both daemons with their own dirs under $(RESULTS); writes results.json and
# results.md there; stops both and removes what they left on the host.
# BENCH_FLAGS passes harness flags, e.g. "-iterations 5 -scale-pods 10".
RESULTS     ?= /var/tmp/criserver-bench
BENCH_FLAGS ?=
BENCH_PKGS  := containerd debootstrap gcc libc6-dev

bench: deps build
	@missing=""; for p in $(BENCH_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "bench: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	mkdir -p $(RESULTS)
	CGO_ENABLED=0 $(GO) build -o $(RESULTS)/bench ./hack/bench
	$(RESULTS)/bench -results $(RESULTS) -criserver-bin $(BIN) $(BENCH_FLAGS)
	$(MAKE) soak

# The no-growth soak at full size (make test runs a short one).
SOAK_ITERATIONS ?= 500
soak:
	mkdir -p $(RESULTS)
	CRISERVER_E2E_REQUIRED=1 CRISERVER_SOAK_ITERATIONS=$(SOAK_ITERATIONS) \
		$(GO) test -count=1 -p 1 -timeout 120m -run '^TestSoakNoGrowth$$' -v ./test/e2e/ > $(RESULTS)/soak.log 2>&1; \
		status=$$?; grep -E '^(---|ok|FAIL)|soak' $(RESULTS)/soak.log | tail -40; exit $$status

clean:
	rm -rf bin
