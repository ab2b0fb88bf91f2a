#!/bin/sh
# Enabled, not started: set join (and the shared settings) in /etc/ovsfabric/fabricd.yaml,
# then `systemctl start fabricd`. It starts by itself at the next boot, before Docker.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl enable fabricd.service || true
fi
