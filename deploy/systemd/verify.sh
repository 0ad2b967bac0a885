#!/bin/sh
# Checks the units, sysusers and tmpfiles snippets with systemd's own tools
# in a scratch root (no systemd needs to be running). Usage: verify.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM

command -v systemd-analyze >/dev/null || { echo "verify.sh: systemd-analyze not installed" >&2; exit 2; }

# The units name these executables; stand-ins are enough for verify.
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/bin" "$root/etc/systemd/system" \
  "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc"
for b in usr/bin/ember-agent usr/bin/ember-collector usr/sbin/nats-server bin/kill; do
  cp /bin/true "$root/$b"
done
cp "$here"/*.service "$root/etc/systemd/system/"
# The targets the units hang off (sysinit.target, network-online.target...).
for d in /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$d" ] && { mkdir -p "$root$d"; cp -a "$d/." "$root$d/"; break; }
done

status=0
for u in "$root"/etc/systemd/system/*.service; do
  if out=$(systemd-analyze verify --root="$root" "$u" 2>&1) && [ -z "$out" ]; then
    echo "ok   $(basename "$u")"
  else
    echo "FAIL $(basename "$u")"; echo "$out" | sed 's/^/     /'; status=1
  fi
done

# Security exposure score (lower is better): informational.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
  for u in ember-agent.service ember-collector.service; do
    score=$(systemd-analyze security --offline=yes --root="$root" "$root/etc/systemd/system/$u" 2>/dev/null | tail -1 || true)
    echo "     $u: $score"
  done
fi

# sysusers: creates ember and the device groups in the scratch root.
cp "$here/ember.sysusers.conf" "$root/usr/lib/sysusers.d/ember.conf"
: > "$root/etc/passwd"; : > "$root/etc/group"
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/ember.conf" >/dev/null 2>&1
  grep -q '^ember:.*:/var/lib/ember:/usr/sbin/nologin$' "$root/etc/passwd" || { echo "FAIL sysusers: no ember user"; status=1; }
  for g in dialout gpio i2c; do
    grep -q "^$g:.*ember" "$root/etc/group" || { echo "FAIL sysusers: ember not in $g"; status=1; }
  done
  [ $status -eq 0 ] && echo "ok   ember.sysusers.conf"
fi

# tmpfiles: directories with the right owner and mode.
cp "$here/ember.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/ember.conf"
if command -v systemd-tmpfiles >/dev/null; then
  systemd-tmpfiles --root="$root" --create "$root/usr/lib/tmpfiles.d/ember.conf"
  m=$(stat -c '%a' "$root/var/lib/ember")
  [ "$m" = 750 ] || { echo "FAIL tmpfiles: /var/lib/ember mode $m, want 750"; status=1; }
  [ $status -eq 0 ] && echo "ok   ember.tmpfiles.conf"
fi
exit $status
