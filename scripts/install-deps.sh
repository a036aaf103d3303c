#!/usr/bin/env bash
# Installs the Debian packages the test suite (and the data plane) needs.
#
# Idempotent and quick when everything is there (one dpkg-query). As root it
# runs `apt-get update` once and installs what is missing, without starting any
# system service (policy-rc.d answers 101 during the install). PostgreSQL is
# only needed for its binaries: the tests use the server on 127.0.0.1:5432 when
# one answers, and otherwise start a throw-away cluster of their own
# (scripts/postgres.mjs).
# As another user it only reports what is missing and fails.
#
# Usage: bash scripts/install-deps.sh [--check]   (--check: report only)
set -euo pipefail

PACKAGES=(
  # clients the tests drive
  python3-openstackclient
  # its `openstack vpn ...` commands (the neutron-vpnaas OSC plugin)
  python3-neutronclient
  # database binaries (initdb/pg_ctl) for the PostgreSQL back-end
  postgresql
  # data plane: namespaces, veths, bridges, firewalling, DHCP, VPN, LB, probes
  iproute2 nftables dnsmasq-base
  strongswan-swanctl charon-systemd libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
  openvpn easy-rsa haproxy
  openssh-server openssh-client
  conntrack tcpdump iputils-ping iputils-arping socat busybox isc-dhcp-client
)

missing_packages() {
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || printf '%s\n' "$p"
  done
}

mapfile -t MISSING < <(missing_packages)
if [ "${#MISSING[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

echo "install-deps: missing Debian packages: ${MISSING[*]}"
if [ "${1:-}" = "--check" ]; then exit 1; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${MISSING[*]}" >&2
  exit 1
fi

# Keep services from starting while packages are installed: invoke-rc.d asks
# /usr/sbin/policy-rc.d, and 101 means "action forbidden". An existing policy
# (e.g. a container's) is left as it is; ours is removed afterwards.
cleanup=()
on_exit() {
  local f
  for f in "${cleanup[@]}"; do rm -f -- "$f"; done
}
trap on_exit EXIT
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# nucleon install-deps: no service starts during package installs\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  cleanup+=(/usr/sbin/policy-rc.d)
fi

export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
apt_opts=(-y -q -o DPkg::Lock::Timeout=600 --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
apt-get update -q -o DPkg::Lock::Timeout=600
apt-get install "${apt_opts[@]}" "${MISSING[@]}"

mapfile -t STILL < <(missing_packages)
if [ "${#STILL[@]}" -ne 0 ]; then
  echo "install-deps: still missing after apt-get install: ${STILL[*]}" >&2
  exit 1
fi
echo "install-deps: installed ${MISSING[*]}"
