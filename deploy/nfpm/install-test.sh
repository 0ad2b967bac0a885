#!/bin/sh
# Installs, upgrades and purges the host-architecture ember-agent and
# ember-collector packages for real with dpkg, inside a private mount
# namespace whose /etc, /usr and /var are overlays on scratch directories:
# the maintainer scripts run as on a target, the host is left untouched.
# Needs root and unshare(1). Usage: install-test.sh DIST_DIR DEB_VERSION
set -eu
dist=${1:?usage: install-test.sh DIST_DIR DEB_VERSION}
ver=${2:?usage: install-test.sh DIST_DIR DEB_VERSION}
arch=$(dpkg --print-architecture)
agent=$(cd "$dist" && pwd)/ember-agent_${ver}_${arch}.deb
collector=$(cd "$dist" && pwd)/ember-collector_${ver}_${arch}.deb
[ -f "$agent" ] && [ -f "$collector" ] || { echo "install-test: no $arch packages in $dist" >&2; exit 1; }
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "install-test: skipped (needs root and unshare)"; exit 0; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

# The part below runs inside the namespace.
cat >"$scratch/inside.sh" <<'INSIDE'
set -eu
s=$1 agent=$2 collector=$3
for d in etc usr var; do
	mkdir -p "$s/$d.up" "$s/$d.work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$s/$d.up,workdir=$s/$d.work" "/$d"
done
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
getent passwd ember >/dev/null && { echo "install-test: user ember exists already"; exit 1; }

dpkg -i "$agent" >"$s/dpkg.log" 2>&1 || { cat "$s/dpkg.log"; exit 1; }
check "agent: user ember, home /var/lib/ember, no shell" \
	'getent passwd ember | grep -q ":/var/lib/ember:/usr/sbin/nologin$"'
for g in dialout gpio i2c; do
	check "agent: ember in group $g" "id -nG ember | tr ' ' '\n' | grep -qx $g"
done
check "agent: /var/lib/ember 0750 ember:ember" '[ "$(stat -c %a:%U:%G /var/lib/ember)" = 750:ember:ember ]'
check "agent: /etc/ember 0750 root:ember" '[ "$(stat -c %a:%U:%G /etc/ember)" = 750:root:ember ]'
check "agent: agent.yaml 0640 root:ember" '[ "$(stat -c %a:%U:%G /etc/ember/agent.yaml)" = 640:root:ember ]'
check "agent: /etc/default/ember-agent 0600" '[ "$(stat -c %a /etc/default/ember-agent)" = 600 ]'
check "agent: binary runs" '/usr/bin/ember-agent -h 2>&1 | grep -q usage'
check "agent: unit installed" '[ -f /usr/lib/systemd/system/ember-agent.service ]'

# Upgrade keeps a locally edited conffile.
echo "# site edit" >>/etc/ember/agent.yaml
dpkg -i --force-confold "$agent" >"$s/dpkg.log" 2>&1 || { cat "$s/dpkg.log"; exit 1; }
check "upgrade: edited agent.yaml kept" 'tail -1 /etc/ember/agent.yaml | grep -q "site edit"'

dpkg -i "$collector" >"$s/dpkg.log" 2>&1 || { cat "$s/dpkg.log"; exit 1; }
check "collector: collector.yaml 0640 root:ember" '[ "$(stat -c %a:%U:%G /etc/ember/collector.yaml)" = 640:root:ember ]'
check "collector: one ember user" '[ "$(getent passwd | grep -c ^ember:)" = 1 ]'

echo data >/var/lib/ember/probe
dpkg --purge ember-agent >"$s/dpkg.log" 2>&1 || { cat "$s/dpkg.log"; exit 1; }
check "purge agent: state kept while the collector is installed" '[ -f /var/lib/ember/probe ]'
check "purge agent: binary gone" '[ ! -e /usr/bin/ember-agent ]'
dpkg --purge ember-collector >"$s/dpkg.log" 2>&1 || { cat "$s/dpkg.log"; exit 1; }
check "purge collector: state removed" '[ ! -e /var/lib/ember ]'
exit $fail
INSIDE
unshare -m --propagation private sh "$scratch/inside.sh" "$scratch" "$agent" "$collector"
