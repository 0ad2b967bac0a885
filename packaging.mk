# Debian packages for amd64, arm64 and armhf (Raspberry Pi OS 32-bit),
# built with nfpm (deploy/nfpm/*.yaml). Included by the Makefile
# (`include packaging.mk`); also usable alone: make -f packaging.mk package
#
#   dist/ember-agent_<version>_<arch>.deb      agent, unit, sysusers/tmpfiles, /etc/ember/agent.yaml
#   dist/ember-collector_<version>_<arch>.deb  collector, unit, /etc/ember/collector.yaml
#   dist/emberctl_<version>_<arch>.deb         operator CLI
#   dist/ember-sim_<version>_<arch>.deb        device simulator

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   ?= -s -w -X github.com/emberwatch/emberwatch/agent.Version=$(VERSION)
TOOLS_BIN ?= $(HOME)/.cache/ember-tools

# nfpm >= 2.45 needs go.digitalxero.dev modules the Go proxy refuses here;
# 2.44.1 builds with Go 1.26 and has everything a .deb needs.
NFPM_VERSION ?= v2.44.1
NFPM         ?= $(TOOLS_BIN)/nfpm

# Debian versions must start with a digit: v1.2.3 -> 1.2.3,
# v1.2.3-4-gabc -> 1.2.3+4+gabc; an untagged abc1234-dirty -> 0.0~gitabc1234+dirty.
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v?([0-9]+\.[0-9].*)$$/\1/; t tag; s/^/0.0~git/; :tag; s/-/+/g')
# Freeze both now: a `?=` variable re-runs git describe at every use, and a
# commit landing during the build would name the packages differently.
VERSION     := $(VERSION)
DEB_VERSION := $(DEB_VERSION)
DEB_ARCHES  ?= amd64 arm64 armhf
DEB_PKGS    ?= ember-agent ember-collector emberctl ember-sim

.PHONY: package package-check package-tools

package: package-tools ## Debian packages for amd64, arm64, armhf into dist/
	@set -e; mkdir -p dist; \
	for arch in $(DEB_ARCHES); do \
	  case $$arch in \
	    amd64) goarch=amd64; goarm= ;; \
	    arm64) goarch=arm64; goarm= ;; \
	    armhf) goarch=arm; goarm=7 ;; \
	    *) echo "packaging.mk: unknown Debian arch $$arch" >&2; exit 1 ;; \
	  esac; \
	  bindir=dist/build/linux-$$arch; mkdir -p $$bindir; \
	  echo "build linux/$$goarch$${goarm:+ GOARM=$$goarm} -> $$bindir"; \
	  GOOS=linux GOARCH=$$goarch GOARM=$$goarm CGO_ENABLED=0 \
	    $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$bindir/ $(addprefix ./cmd/,$(DEB_PKGS)); \
	  for p in $(DEB_PKGS); do \
	    out=dist/$${p}_$(DEB_VERSION)_$$arch.deb; \
	    DEB_ARCH=$$arch DEB_VERSION='$(DEB_VERSION)' BIN_DIR=$$bindir \
	      $(NFPM) package --packager deb --config deploy/nfpm/$$p.yaml --target $$out >$$out.log 2>&1 \
	      || { cat $$out.log; rm -f $$out.log; exit 1; }; \
	    rm -f $$out.log; echo "  $$out"; \
	  done; \
	done

package-check: package ## build the packages and check their contents (deploy/nfpm/check.sh)
	deploy/nfpm/check.sh dist '$(DEB_VERSION)' $(DEB_ARCHES)

package-tools: $(NFPM)

$(NFPM):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
