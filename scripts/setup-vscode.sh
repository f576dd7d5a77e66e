#!/usr/bin/env bash
# Prepares the real VS Code that ships inside the code-server npm package, offline, for the
# editor and packaging test tiers and the lab. Safe to re-run: the result is cached under
# ~/.cache/k3s-etcd/ and a stamp file marks a finished build.
# Prints the path of the VS Code directory (containing out/server-main.js) on its last line.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
CACHE="${K3S_ETCD_CACHE:-$HOME/.cache/k3s-etcd}/code-server-$CODE_SERVER_VERSION"
VSCODE="$CACHE/package/lib/vscode"
STAMP="$CACHE/.ready"

log() { echo "[setup-vscode] $*" >&2; }

if [[ -f "$STAMP" && -f "$VSCODE/out/server-main.js" ]]; then
  echo "$VSCODE"
  exit 0
fi

for bin in rg chromium; do
  command -v "$bin" >/dev/null || { log "missing $bin: run scripts/install-system-deps.sh first"; exit 1; }
done
dpkg -s libkrb5-dev >/dev/null 2>&1 || { log "missing libkrb5-dev: run scripts/install-system-deps.sh first"; exit 1; }

rm -rf "$CACHE"
mkdir -p "$CACHE"
cd "$CACHE"
log "fetching code-server@$CODE_SERVER_VERSION from the npm registry"
tarball=$(npm pack "code-server@$CODE_SERVER_VERSION" --silent 2>/dev/null | tail -1)
tar xzf "$tarball"
rm -f "$tarball"

cd "$VSCODE"
log "installing VS Code server dependencies (no scripts: its postinstall downloads ripgrep)"
npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2
log "building native modules"
npm rebuild @vscode/spdlog kerberos native-watchdog --loglevel=error >&2
# node-pty builds its .node, then a post-step calling `npx node-gyp` fails; the binary is what counts.
npm rebuild node-pty --loglevel=error >&2 || true
ls node_modules/node-pty/build/Release/pty.node >/dev/null
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
ln -sfn node_modules node_modules.asar
log "installing built-in extensions' dependencies"
(cd extensions && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)

touch "$STAMP"
log "ready: $VSCODE"
echo "$VSCODE"
