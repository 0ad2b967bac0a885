# emberwatch build, test and demo targets. `make help` lists them.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/emberwatch/emberwatch/agent.Version=$(VERSION)
BINS    := ember-agent ember-collector emberctl ember-sim
TOOLS_BIN ?= $(HOME)/.cache/ember-tools
export TOOLS_BIN
export PATH := $(TOOLS_BIN):/usr/sbin:$(PATH)

.PHONY: help build test test-short fuzz bench demo cross lint vet detection-report chaos package clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the four binaries into bin/
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINS))

test: lint ## vet, format check, all tests, short fuzz runs (what CI runs)
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz

test-short: ## unit tests only (skips slow integration tests)
	$(GO) test -short -count=1 ./...

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# fail a target with a bare "context deadline exceeded" at the deadline on a
# loaded machine (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
fuzz: ## run every fuzz target briefly
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: ## hot-path benchmarks (figures for issue notes)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./... | tee bench.out

demo: ## a whole demo site in one process: NATS, simulated racks and UPS, agent, collector, thermal event, evacuation dry-run
	$(GO) run ./cmd/emberctl demo

detection-report: ## scenario library through the detector vs a fixed 60 degC alarm
	$(GO) run ./cmd/emberctl detection-report

chaos: ## fault and attack tests (docs/reliability.md)
	$(GO) test -count=1 -run 'Chaos|Attack' -v ./...

cross: ## cross-compile for linux/amd64, linux/arm64, linux/arm (GOARM=7)
	@mkdir -p dist
	@for t in amd64 arm64 arm; do \
	  echo "linux/$$t"; \
	  GOOS=linux GOARCH=$$t GOARM=7 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/linux-$$t/ $(addprefix ./cmd/,$(BINS)) || exit 1; \
	done
	@ls -l dist/*/

lint: vet ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

clean:
	rm -rf bin dist bench.out

include packaging.mk
