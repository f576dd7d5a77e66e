#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, builds, and runs every tier.
# A tier whose dependency is missing fails; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo; echo "== $* ($(($(date +%s) - start))s)"; }

step "system packages"
bash scripts/install-system-deps.sh
step "npm ci"
npm ci --no-audit --no-fund --loglevel=error
# The edge hosts' root file system (debootstrap on a fresh machine: minutes, mostly download and
# unpacking) is made while the checks and builds below run; its log is printed when it ends.
rootfs_log=$(mktemp)
rootfs_pid=
trap '[ -n "$rootfs_pid" ] && kill "$rootfs_pid" 2>/dev/null; rm -f "$rootfs_log"' EXIT
node --import tsx -e "require('./scripts/harness/edgeHosts').ensureRootfs().then((p) => console.log(p))" \
  >"$rootfs_log" 2>&1 &
rootfs_pid=$!
step "typecheck, lint, format"
npm run --silent typecheck
npm run --silent lint
npm run --silent format:check
step "package the VSIX (production build)"
npm run --silent package >/dev/null
step "development build (extension, CLI, webview, in-editor suites)"
npm run --silent build
step "real VS Code (code-server's, cached under ~/.cache/k3s-etcd)"
bash scripts/setup-vscode.sh >/dev/null
step "edge-host root file system (debootstrap once, cached under ~/.cache/k3s-etcd; started after npm ci)"
rootfs_rc=0
wait "$rootfs_pid" || rootfs_rc=$?
rootfs_pid=
cat "$rootfs_log"
if ((rootfs_rc != 0)); then
  echo "the edge-host root file system could not be made (exit $rootfs_rc): the system and editor tiers need it" >&2
  exit "$rootfs_rc"
fi
step "tests"
node scripts/run-tests.mjs ${K3S_ETCD_TIERS:-all}
