#!/usr/bin/env bash
# Installs the real servers the tests talk to. Idempotent: a reused machine
# keeps what it has; Go-built servers are cached per version in TOOLS_BIN.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pkgs=(snmpd snmp snmptrapd socat nftables iputils-ping chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt: installing ${missing[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

export TOOLS_BIN="${TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/ember-tools}"
mkdir -p "$TOOLS_BIN"
if [ ! -x "$TOOLS_BIN/influxd" ]; then
  echo "building influxd 1.8.10 (about a minute, cached afterwards)"
  GOBIN="$TOOLS_BIN" go install \
    -ldflags "-s -w -X main.version=1.8.10 -X main.branch=1.8 -X main.commit=v1.8.10" \
    github.com/influxdata/influxdb/cmd/influxd@v1.8.10
fi
if [ ! -x "$TOOLS_BIN/nats-server" ]; then
  echo "building nats-server 2.15.2"
  GOBIN="$TOOLS_BIN" go install github.com/nats-io/nats-server/v2@v2.15.2
fi
# The project's own pass_persist backend for snmpd.
GOBIN="$TOOLS_BIN" go install ./internal/testenv/cmd/upspass 2>/dev/null || true
export PATH="$TOOLS_BIN:/usr/sbin:$PATH"
echo "TOOLS_BIN=$TOOLS_BIN"
