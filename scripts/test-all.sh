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
step "edge-host root file system (debootstrap once, cached under ~/.cache/k3s-etcd)"
node --import tsx -e "require('./scripts/harness/edgeHosts').ensureRootfs().then((p) => console.log(p))"
step "tests"
node scripts/run-tests.mjs ${K3S_ETCD_TIERS:-all}
