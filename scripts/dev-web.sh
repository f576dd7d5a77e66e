#!/usr/bin/env bash
# Main job (for now): build, start the real VS Code (from the code-server package) with the
# extension in development mode and the example workspace, and print the URL to open.
# Ctrl+C stops it. Binds to 127.0.0.1 only, and needs a connection token: the server refuses
# every request without it (its terminal is a shell as you, so no other local user may open it).
# The token is kept in $state/connection-token (0600, reused across restarts); the URL carries it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-system-deps.sh
[[ -d node_modules ]] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
vscode=$(bash scripts/setup-vscode.sh | tail -1)
port="${PORT:-8765}"
state="${K3S_ETCD_DEV_STATE:-$HOME/.cache/k3s-etcd/dev-web}"
workspace="$state/workspace"
mkdir -p "$state/server" "$state/user/User" "$workspace"
chmod 700 "$state"
token=$(node scripts/lab/connectionToken.mjs "$state/connection-token")
# The example workspace is copied once, so your edits there survive restarts and never touch the repo.
[[ -f "$workspace/k3s-etcd.yaml" ]] || cp "$root/examples/edge-lab/k3s-etcd.yaml" "$workspace/"
[[ -f "$state/user/User/settings.json" ]] || echo '{ "security.workspace.trust.enabled": false, "workbench.startupEditor": "none" }' > "$state/user/User/settings.json"
payload=$(node -e 'console.log(encodeURIComponent(JSON.stringify([["extensionDevelopmentPath", process.argv[1]], ["skipWelcome", "true"]])))' "vscode-remote://127.0.0.1:$port$root")
url="http://127.0.0.1:$port/?tkn=$token&folder=$workspace&payload=$payload"
echo
echo "VS Code with the K3s etcd extension (development build): open"
echo "  $url"
echo "Workspace: $workspace   (Ctrl+C to stop)"
echo
exec node "$vscode/out/server-main.js" --host 127.0.0.1 --port "$port" \
  --connection-token-file "$state/connection-token" \
  --accept-server-license-terms --server-data-dir "$state/server" --user-data-dir "$state/user"
