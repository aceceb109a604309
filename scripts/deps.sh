#!/usr/bin/env bash
# Installs what roam needs to build, test and demo on Debian 12 (run as root). Idempotent: does
# nothing when everything is already there.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git ccache
  libsodium-dev libmnl-dev libexpected-dev libcli11-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev chromium  # --metrics HTTP server; the status page's browser test
  libtomlplusplus-dev groff-base  # --config files; man page rendering test
  clang-14 libclang-rt-14-dev
  iproute2 nftables openssh-server openssh-client socat haproxy netcat-openbsd procps
  python3 python3-cryptography conntrack curl proxychains4 dante-server microsocks
  tshark  # tests/dissector: captures a session and decodes it with tools/wireshark/roam.lua
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages such as openssh-server, haproxy and dante-server would start their daemons on install;
# the tests start their own. Without a policy in place, forbid service starts during the install.
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  added_policy=1
fi
trap '[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
