# Shardline's everyday targets. `make test` is the one command that proves a checkout works:
# it installs what the tests need, starts the local emulators, runs every test, and stops the
# emulators whatever happened.

GO ?= go
EMULATORS := scripts/emulators.sh
# Where the emulators keep PIDs, logs and the endpoints file; a second checkout or a parallel
# run can use its own.
export SHARDLINE_EMULATOR_DIR ?= $(CURDIR)/.emulators
# Packages for go test; override to narrow a run, e.g. make test PKGS=./aggregation/...
PKGS ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 25m

.PHONY: test unit check-tools deps emulators-start emulators-stop vet bench fuzz build install release

# The one version every binary reports (shardline --version, shardline-agent -version,
# shardline-demo -version): the nearest tag, commits since it and the commit, "-dirty" for a
# modified tree. Override on the command line, make release VERSION=v1.2.3; a VERSION in the
# environment (which CI systems often set for their own use) is not taken.
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
VERSION_LDFLAGS := -X github.com/shardline/shardline/internal/version.stamp=$(VERSION)
# Where make build puts the binaries, and the ones make install installs.
BINDIR ?= $(CURDIR)/bin
INSTALL_CMDS := ./cmd/shardline ./cmd/shardline-agent

## test: install dependencies, start the emulators, vet (the bench module too, so it keeps
## compiling; its fleet harness is tested, against dynalite too), run all tests, stop the
## emulators. The allocation tests (named ...Allocations) run a second time without the
## race detector, which makes sync.Pool drop items and so allocate where a normal build does
## not. The checksum code runs a third time built with the purego tag, so that the path for
## CPUs without AVX-512 is tested on machines with it.
test: check-tools deps
	@set -e; trap '$(EMULATORS) stop' EXIT; \
	$(EMULATORS) start; \
	. "$$SHARDLINE_EMULATOR_DIR/env"; \
	$(GO) vet ./...; \
	(cd bench && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./fleet/); \
	(cd exporters/prometheus && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); \
	(cd exporters/otel && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); \
	$(GO) test $(TESTFLAGS) $(PKGS); \
	$(GO) test -count=1 -run 'Allocations$$' $(PKGS); \
	$(GO) test -count=1 -tags purego ./internal/md5lanes ./aggregation

## demo: the README's first command. Starts a separate set of emulators (its own state
## directory, so the emulators a developer's tests use keep running), then runs
## cmd/shardline-demo: the agent tails a rotating access log into a 4-shard stream (in
## shardline emulator, which the program starts; -kinesis kinesis-mock for the other), two
## consumer workers count it, a shard is split and a worker stopped midway, and the run fails
## if any line was lost. The emulators are stopped whatever happened, Ctrl-C included.
## DEMOFLAGS passes flags to the program, e.g. make demo DEMOFLAGS='-stop graceful -keep'.
.PHONY: demo
demo: check-tools deps
	@set -e; export SHARDLINE_EMULATOR_DIR="$(CURDIR)/.emulators/demo"; \
	trap '$(EMULATORS) stop' EXIT; trap 'exit 130' INT TERM; \
	$(EMULATORS) start; \
	. "$$SHARDLINE_EMULATOR_DIR/env"; \
	$(GO) run ./cmd/shardline-demo $(DEMOFLAGS)

## unit: the tests that need no emulator (emulator tests skip outside CI).
unit:
	$(GO) test $(TESTFLAGS) $(PKGS)

## check-tools: say what is missing and how to install it.
check-tools:
	@missing=0; \
	command -v $(GO) >/dev/null || { echo "missing: go (install Go 1.26 from the Go downloads page)"; missing=1; }; \
	command -v node >/dev/null || { echo "missing: node (install Node.js 20+, e.g. apt-get install nodejs)"; missing=1; }; \
	command -v npm >/dev/null || { echo "missing: npm (e.g. apt-get install npm)"; missing=1; }; \
	command -v curl >/dev/null || { echo "missing: curl (e.g. apt-get install curl)"; missing=1; }; \
	command -v moto_server >/dev/null || { echo "missing: moto_server (pip install 'moto[server]==5.2.1')"; missing=1; }; \
	exit $$missing

## deps: the pinned npm emulators and the Go modules.
deps:
	$(EMULATORS) install
	$(GO) mod download
	cd bench && $(GO) mod download
	cd exporters/prometheus && $(GO) mod download
	cd exporters/otel && $(GO) mod download

emulators-start:
	$(EMULATORS) start

emulators-stop:
	$(EMULATORS) stop

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...

## bench: the benchmarks of every package, several runs each, as a table of medians.
bench:
	scripts/bench.sh

## fuzz: every fuzz target in the repository, one after the other, FUZZTIME each (30s unless
## given, e.g. FUZZTIME=5m); FUZZ=REGEXP picks targets by name. scripts/fuzz.sh list names them.
FUZZTIME ?= 30s
FUZZ ?= .
fuzz:
	FUZZTIME='$(FUZZTIME)' FUZZ='$(FUZZ)' GO='$(GO)' scripts/fuzz.sh

## build: the three binaries, stamped with VERSION, into bin/ (BINDIR=... for elsewhere).
## Static (CGO_ENABLED=0), as the release archives are.
build:
	@mkdir -p "$(BINDIR)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(VERSION_LDFLAGS)' -o "$(BINDIR)/" ./cmd/shardline ./cmd/shardline-agent ./cmd/shardline-demo

## install: shardline and shardline-agent, stamped with VERSION, into $(go env GOBIN), else
## $(go env GOPATH)/bin. The demo needs this repository's emulators and is not installed.
install:
	CGO_ENABLED=0 $(GO) install -trimpath -ldflags '$(VERSION_LDFLAGS)' $(INSTALL_CMDS)

## release: static archives of the three binaries for linux/amd64, linux/arm64 and
## darwin/arm64, with LICENSE, NOTICE, the CHANGELOG, the systemd unit and the licences of
## every linked module, and a SHA256SUMS file, all in dist/.
release:
	VERSION='$(VERSION)' GO='$(GO)' scripts/release.sh
