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

.PHONY: build run test test-unit test-e2e bench deps clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/criserver

deps:
	bash hack/install-deps.sh

# Installs what is missing, builds, and runs the daemon in the foreground
# with built-in defaults (root required: namespaces, mounts, cgroups).
run: deps build
	./$(BIN) $(RUN_FLAGS)

# Unit tests (race detector on) then end-to-end tests (root required).
test: test-unit test-e2e

test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: build
	$(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./test/e2e/...

bench:
	@echo "make bench: the benchmark harness (hack/bench) is not built yet (issue 7)" >&2
	@exit 1

clean:
	rm -rf bin
