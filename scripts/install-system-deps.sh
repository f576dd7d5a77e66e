#!/usr/bin/env bash
# Installs the Debian packages the test tiers and the lab need, only when something is missing.
# etcd-server/etcd-client: the real etcd 3.4 and etcdctl; chromium: headless browser for the editor
# tier; ripgrep + libkrb5-dev: needed by the VS Code server inside code-server; curl: the backup
# tests put aged objects into their S3 server as a host would (SigV4); prometheus: the server and
# promtool the monitoring export's integration test runs itself on a free loopback port with its
# own storage (where systemd runs, the package also starts its service on :9090: never used).
set -euo pipefail
pkgs=(etcd-server etcd-client chromium ripgrep libkrb5-dev openssh-server openssh-client
  systemd-container debootstrap iproute2 sqlite3 openssl curl prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "[deps] system packages present"
  exit 0
fi
echo "[deps] installing: ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] installed"
