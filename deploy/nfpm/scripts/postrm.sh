#!/bin/sh
# postrm of ember-agent and ember-collector. The state directory is kept
# even on purge while another ember package is installed; the buffer may
# hold telemetry not yet delivered.
set -e
pkg=${DPKG_MAINTSCRIPT_PACKAGE:-ember-agent}
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
	other=ember-collector
	[ "$pkg" = ember-collector ] && other=ember-agent
	if ! dpkg-query -W -f='${Status}' "$other" 2>/dev/null | grep -q 'ok installed'; then
		rm -rf /var/lib/ember
	fi
fi
exit 0
