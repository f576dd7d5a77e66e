/**
 * THE ONE FAKE: stand-ins for K3s's binary and install.sh. K3s cannot run on these machines
 * (no K3s binary in the reachable registries), so the offline folder of a test workspace gets
 * two small shell scripts instead. They record how they were called (arguments and INSTALL_K3S_*
 * environment, in /var/lib/k3s-standin on the host), so tests assert exactly what K3s would get.
 * The stand-in `k3s server` uses the datastore the way K3s's kine would: Debian's etcdctl (a Go
 * etcd v3 client) with exactly the endpoint and three files named in /etc/rancher/k3s/config.yaml;
 * it writes the kubeconfig K3s would write and answers `k3s kubectl get node`. Without a
 * datastore-endpoint it is K3s on SQLite (kine's default): it must find a SQLite database at
 * /var/lib/rancher/k3s/server/db/state.db (the file's magic header; the hosts have no sqlite3)
 * and records the SHA-256 of the file it starts on in sqlite.log, never touching etcd; with
 * `refuse-sqlite` in its log folder it exits 1 there instead (a K3s that fails on SQLite).
 * Its unit drops the Ready mark when K3s stops: K3s's own unit is Type=notify, so a K3s that was
 * stopped or is restarting never answers Ready from before (a check right after a start would
 * otherwise see the old mark and call a failing start Ready).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const STANDIN_LOG_DIR = '/var/lib/k3s-standin';
export const STANDIN_VERSION = 'v1.31.4+k3s1';

const KUBECONFIG = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: c3RhbmQtaW4K
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: c3RhbmQtaW4K
    client-key-data: c3RhbmQtaW4K
`;

const K3S = `#!/bin/sh
# Stand-in for K3s (k3s-etcd tests only; see test/support/k3sStandIn.ts).
LOG=${STANDIN_LOG_DIR}
CFG=/etc/rancher/k3s/config.yaml
mkdir -p "$LOG"
val() { sed -n "s/^$1: *//p" "$CFG" | tr -d '"'; }
case "$1" in
  --version)
    echo "k3s version ${STANDIN_VERSION} (stand-in)"
    ;;
  server)
    shift
    rm -f "$LOG/ready"
    echo "start $(date +%s.%N) args=$*" >> "$LOG/server.log"
    if [ -n "$(val datastore-endpoint)" ]; then
      # What kine does first: reach the datastore with exactly the configured files.
      ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints="$(val datastore-endpoint)" \\
        --cacert "$(val datastore-cafile)" --cert "$(val datastore-certfile)" --key "$(val datastore-keyfile)" \\
        put "/registry/k3s-standin/$(hostname)" started >> "$LOG/server.log" 2>&1 || exit 1
    else
      # K3s on SQLite: kine opens the state.db in K3s's db folder.
      DB=/var/lib/rancher/k3s/server/db/state.db
      if [ -f "$LOG/refuse-sqlite" ]; then echo "sqlite refused (test)" >> "$LOG/server.log"; exit 1; fi
      [ "$(head -c 15 "$DB" 2>/dev/null)" = "SQLite format 3" ] || { echo "sqlite: no database at $DB" >> "$LOG/server.log"; exit 1; }
      echo "sqlite $(date +%s.%N) $(sha256sum "$DB" | cut -d' ' -f1)" >> "$LOG/sqlite.log"
    fi
    # K3s keeps the cluster token in its full form (CA hash, then the secret).
    mkdir -p /var/lib/rancher/k3s/server
    [ -f /var/lib/rancher/k3s/server/token ] || (umask 077; echo "K10standin0ca0hash::server:$(val token)" > /var/lib/rancher/k3s/server/token)
    mode=$(val write-kubeconfig-mode)
    umask 077
    printf '%s' '${KUBECONFIG}' > /etc/rancher/k3s/k3s.yaml
    chmod "\${mode:-600}" /etc/rancher/k3s/k3s.yaml
    touch "$LOG/ready"
    exec sleep infinity
    ;;
  kubectl)
    if [ -f "$LOG/ready" ] && systemctl is-active -q k3s; then
      echo "$(hostname) Ready control-plane,master 1m ${STANDIN_VERSION}"
    else
      echo "The connection to the server 127.0.0.1:6443 was refused" >&2
      exit 1
    fi
    ;;
  *)
    echo "stand-in k3s: $* is not imitated" >&2
    exit 2
    ;;
esac
`;

const INSTALL = `#!/bin/sh
# Stand-in for K3s's install.sh (k3s-etcd tests only; see test/support/k3sStandIn.ts).
set -e
mkdir -p ${STANDIN_LOG_DIR}
{ echo "at=$(date +%s.%N)"; echo "args=$*"; env | grep '^INSTALL_K3S_' | sort; } > ${STANDIN_LOG_DIR}/install.log
[ "$INSTALL_K3S_SKIP_DOWNLOAD" = true ] && [ -x /usr/local/bin/k3s ] || { echo "stand-in install.sh: no /usr/local/bin/k3s" >&2; exit 1; }
printf '%s\\n' '[Unit]' 'Description=Lightweight Kubernetes (stand-in)' '[Service]' \\
  "ExecStart=/usr/local/bin/k3s \${INSTALL_K3S_EXEC:-server} $*" 'Restart=always' 'RestartSec=2' \\
  'ExecStopPost=/bin/rm -f ${STANDIN_LOG_DIR}/ready' \\
  '[Install]' 'WantedBy=multi-user.target' > /etc/systemd/system/k3s.service
systemctl daemon-reload
systemctl enable -q k3s
[ "$INSTALL_K3S_SKIP_START" = true ] || systemctl restart k3s
`;

/** Writes the stand-in `k3s` and `install.sh` into `dir` (the workspace's offline folder). */
export async function writeK3sStandIn(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'k3s'), K3S);
  await chmod(join(dir, 'k3s'), 0o755);
  await writeFile(join(dir, 'install.sh'), INSTALL);
}
