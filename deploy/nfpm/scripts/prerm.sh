#!/bin/sh
# prerm of ember-agent and ember-collector: stop the service on removal
# (not on upgrade; postinst restarts it then).
set -e
pkg=${DPKG_MAINTSCRIPT_PACKAGE:-ember-agent}
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now "$pkg.service" >/dev/null || true
fi
exit 0
