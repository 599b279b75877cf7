# Photon: build, test and run.
#   make run    a working cloud on this machine (controller on https://127.0.0.1:9000)
#   make test   install dependencies, build, vet, test, short fuzz pass
#   make bench-place   the placement benchmark, summarized by benchstat

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

GO        ?= go
MODULE    := github.com/photon-cloud/photon
BIN       := $(CURDIR)/bin
DATA_DIR  ?= .data
LISTEN    ?= 127.0.0.1:9000
FUZZTIME  ?= 20000x

VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS    := -X $(MODULE)/internal/version.Version=$(VERSION) \
              -X $(MODULE)/internal/version.GitCommit=$(GIT_COMMIT)

.PHONY: all build deps test vet fuzz run clean bench-place

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/photon ./cmd/photon
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/photond ./cmd/photond

deps:
	./scripts/install-deps.sh
	$(GO) mod download

vet:
	$(GO) vet ./...

# End-to-end tests run the binaries in $(BIN) (PHOTON_BIN_DIR).
test: deps build vet
	PHOTON_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout 30m ./...
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# The placement decision alone (docs/performance.md): BENCHCOUNT runs of
# each case, then benchstat's medians and spread (benchstat is built from
# the Go module proxy, like any module). bench/fleet is the end-to-end run.
BENCHCOUNT ?= 6
BENCHSTAT  := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench-place:
	@mkdir -p $(BIN)
	$(GO) test -run XXX -bench BenchmarkPlace -benchmem -benchtime 20000x -count $(BENCHCOUNT) ./internal/scheduler/ | tee $(BIN)/bench-place.txt
	$(GO) run $(BENCHSTAT) $(BIN)/bench-place.txt

# A dev cloud: the controller with embedded etcd and one local host (real
# QEMU VMs where QEMU runs a guest here, else the fake driver); state in
# $(DATA_DIR).
# It also builds the walkthrough's guest image, $(DATA_DIR)/test-image.qcow2,
# once (a failure to build it does not stop the cloud).
run: build
	@mkdir -p $(DATA_DIR)
	@[ -f $(DATA_DIR)/test-image.qcow2 ] || ./scripts/build-test-image.sh $(DATA_DIR)/test-image.qcow2 || \
		echo "make run: could not build $(DATA_DIR)/test-image.qcow2 (scripts/build-test-image.sh); the cloud runs without it"
	$(BIN)/photond dev --data-dir $(DATA_DIR) --listen $(LISTEN)

clean:
	rm -rf $(BIN)
