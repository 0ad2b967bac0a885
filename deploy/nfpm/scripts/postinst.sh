#!/bin/sh
# postinst of ember-agent and ember-collector: the package name (set by
# dpkg) selects the unit and configuration file.
set -e
pkg=${DPKG_MAINTSCRIPT_PACKAGE:-ember-agent}
unit=$pkg.service
cfg=/etc/ember/${pkg#ember-}.yaml

[ "$1" = configure ] || exit 0

# The daemons' user and device groups: sysusers when systemd is there,
# adduser otherwise (containers, chroots).
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers "/usr/lib/sysusers.d/$pkg.conf"
else
	getent group ember >/dev/null || addgroup --system ember
	getent passwd ember >/dev/null ||
		adduser --system --ingroup ember --home /var/lib/ember --no-create-home \
			--shell /usr/sbin/nologin --gecos "emberwatch daemons" ember
	if [ "$pkg" = ember-agent ]; then
		for g in dialout gpio i2c; do
			getent group "$g" >/dev/null || addgroup --system "$g"
			adduser ember "$g" >/dev/null
		done
	fi
fi

# State: the store-and-forward buffer; only the daemons may read it.
install -d -o ember -g ember -m 0750 /var/lib/ember
# Configuration: may hold secrets; root writes, ember reads.
install -d -o root -g ember -m 0750 /etc/ember
if [ -f "$cfg" ]; then
	chgrp ember "$cfg"
	chmod 0640 "$cfg"
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	if [ -z "$2" ]; then
		# First install: the example configuration points at example
		# devices, so enable but do not start until it has been edited.
		systemctl enable "$unit" >/dev/null || true
		echo "$pkg: edit $cfg, then: systemctl start $unit"
	else
		systemctl try-restart "$unit" >/dev/null || true
	fi
fi
exit 0
