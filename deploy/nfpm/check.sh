#!/bin/sh
# Checks the .deb files made by `make package`: names, control fields,
# contents, conffiles, maintainer scripts and the binaries' CPU type; runs
# the binaries of the host's architecture and installs, upgrades and purges
# those packages in a throw-away mount namespace (install-test.sh). Usage:
#   deploy/nfpm/check.sh DIST_DIR DEB_VERSION [ARCH...]   (default arches: amd64 arm64 armhf)
set -eu
dist=${1:?usage: check.sh DIST_DIR DEB_VERSION [ARCH...]}
ver=${2:?usage: check.sh DIST_DIR DEB_VERSION [ARCH...]}
shift 2
[ $# -gt 0 ] || set -- amd64 arm64 armhf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# Expected files per package (one path per line).
expect() {
	case $1 in
	ember-agent) cat <<'L'
./usr/bin/ember-agent
./usr/lib/systemd/system/ember-agent.service
./usr/lib/systemd/system/ember-nats-leaf.service
./usr/lib/sysusers.d/ember-agent.conf
./usr/lib/tmpfiles.d/ember-agent.conf
./etc/ember/agent.yaml
./etc/default/ember-agent
./usr/share/doc/ember-agent/install-pi.md
./usr/share/doc/ember-agent/examples/journald-volatile.conf
./usr/share/doc/ember-agent/examples/nats/leaf/edge.conf
L
		;;
	ember-collector) cat <<'L'
./usr/bin/ember-collector
./usr/lib/systemd/system/ember-collector.service
./usr/lib/sysusers.d/ember-collector.conf
./usr/lib/tmpfiles.d/ember-collector.conf
./etc/ember/collector.yaml
./etc/default/ember-collector
./usr/share/doc/ember-collector/deploy.md
./usr/share/doc/ember-collector/examples/nats/cluster/hub-1.conf
L
		;;
	emberctl) echo ./usr/bin/emberctl ;;
	ember-sim) printf '%s\n' ./usr/bin/ember-sim ./usr/share/doc/ember-sim/examples/demo-site.yaml ;;
	esac
}

# ELF e_machine (bytes 18-19, little endian) per Debian arch.
machine() {
	case $1 in amd64) echo 3e00 ;; arm64) echo b700 ;; armhf) echo 2800 ;; esac
}

for arch in "$@"; do
	for pkg in ember-agent ember-collector emberctl ember-sim; do
		before=$fails
		deb=$dist/${pkg}_${ver}_${arch}.deb
		[ -f "$deb" ] || { fail "$deb: missing"; continue; }
		name=$(basename "$deb")

		for f in Package:$pkg Version:$ver Architecture:$arch; do
			got=$(dpkg-deb -f "$deb" "${f%%:*}")
			[ "$got" = "${f#*:}" ] || fail "$name: ${f%%:*} is '$got', want '${f#*:}'"
		done

		dpkg-deb -c "$deb" | awk '{print $6}' >"$work/list"
		for p in $(expect $pkg); do
			grep -qx "$p" "$work/list" || fail "$name: lacks $p"
		done
		bin=./usr/bin/$pkg
		mode=$(dpkg-deb -c "$deb" | awk -v p="$bin" '$6 == p {print $1}')
		[ "$mode" = "-rwxr-xr-x" ] || fail "$name: $bin mode $mode"

		rm -rf "$work/x" "$work/ctl"
		dpkg-deb -x "$deb" "$work/x"
		dpkg-deb -e "$deb" "$work/ctl"
		exe=$work/x/${bin#./}
		m=$(od -An -tx1 -j18 -N2 "$exe" | tr -d ' \n')
		[ "$m" = "$(machine "$arch")" ] || fail "$name: $bin is for ELF machine $m, not $arch"

		case $pkg in ember-agent | ember-collector)
			cfg=/etc/ember/${pkg#ember-}.yaml
			grep -qx "$cfg" "$work/ctl/conffiles" || fail "$name: $cfg is not a conffile"
			grep -qx /etc/default/$pkg "$work/ctl/conffiles" || fail "$name: /etc/default/$pkg is not a conffile"
			for s in postinst prerm postrm; do
				[ -x "$work/ctl/$s" ] || { fail "$name: no $s"; continue; }
				sh -n "$work/ctl/$s" || fail "$name: $s: syntax"
			done
			grep -q 'install -d -o ember -g ember -m 0750 /var/lib/ember' "$work/ctl/postinst" ||
				fail "$name: postinst does not create /var/lib/ember 0750"
			grep -q '^Type=notify' "$work/x/usr/lib/systemd/system/$pkg.service" || fail "$name: unit is not Type=notify"
			;;
		esac

		# Run what can run here: the binary must start and print its usage.
		if [ "$arch" = "$(dpkg --print-architecture 2>/dev/null)" ]; then
			"$exe" -h >"$work/out" 2>&1 || fail "$name: $bin -h exited $?"
			grep -qi usage "$work/out" || fail "$name: $bin -h printed no usage"
		fi
		[ $fails -eq "$before" ] || continue
		echo "ok   $name ($(wc -l <"$work/list") entries, $(du -k "$deb" | cut -f1) KiB)"
	done
done
# Install, upgrade and purge for real (private mount namespace, overlays).
host=$(dpkg --print-architecture 2>/dev/null || true)
for arch in "$@"; do
	[ "$arch" = "$host" ] || continue
	"$(dirname "$0")/install-test.sh" "$dist" "$ver" || fail "install-test.sh ($arch)"
done
[ $fails -eq 0 ] || { echo "$fails problem(s)"; exit 1; }
