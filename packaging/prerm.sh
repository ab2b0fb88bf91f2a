#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now fabricd.service || true
fi
# The userspace WireGuard device process outlives fabricd (KillMode=process): end it, by the
# PID in its pidfile, if that PID still runs ovsfabric-wg.
if [ "$1" = remove ]; then
	for f in /run/ovsfabric/wireguard-*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q '^[^ ]*ovsfabric-wg '; then
			kill "$pid" || true
		fi
	done
fi
