#!/usr/bin/env bash
# Install etcd from Debian's archive (package etcd-server) for the etcd store's integration tests
# and `make ha-demo`. Idempotent; never starts or enables the system service: tests and demos run
# their own members on loopback ports with data in temporary directories.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
    etcd --version | sed -n 1p
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

# Debian's maintainer scripts start services through invoke-rc.d, which asks policy-rc.d first:
# answer 101 ("action forbidden") while the package installs, then put back what was there.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
    backup="$(mktemp)"
    $SUDO cp -p "$policy" "$backup"
fi
restore() {
    if [ -n "$backup" ]; then
        $SUDO cp -p "$backup" "$policy"
        rm -f "$backup"
    else
        $SUDO rm -f "$policy"
    fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends etcd-server >/dev/null

# On a systemd host the unit may have been enabled by the package: the tests do not want it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi

etcd --version | sed -n 1p
