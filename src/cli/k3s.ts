/** `k3s-etcd k3s ...`: K3s servers on the external etcd. */
import { dirname, resolve } from 'node:path';
import { backupK3s, backupProgressText, restoreK3s, verifyBackup } from '../core/k3s/backup';
import { fetchKubeconfig, installK3s, latestBackup } from '../core/k3s/ops';
import { k3sRestoreConfirmation } from '../core/k3s/words';
import { selectK3sServers } from '../core/inventory/select';
import { fileTokenStore } from '../core/k3s/token';
import { confirm, json, loadValid, selectCluster, UsageError, type Subcommand } from './context';
import { progressLine } from './progressLine';
import {
  cancelOnSigint,
  previewGate,
  printer,
  report,
  SSH_HELP,
  SSH_OPTIONS,
  sshContext,
} from './remote';

const k3sInstallCommand: Subcommand = {
  name: 'k3s install',
  summary: 'Install or re-point K3s servers on the external etcd, one at a time, over SSH',
  usage:
    'k3s-etcd k3s install [--host NAME]... [--offline-dir PATH] [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `For each K3s server (hosts with the role k3s-server, or only --host ones), one after
another: upload the datastore client certificate set to /etc/rancher/k3s/etcd (key 0600), write
/etc/rancher/k3s/config.yaml (0600: it holds the token) with datastore-endpoint = every member's
client URL and the three files, prove from the host that the datastore answers with exactly those
files, then install K3s (online with INSTALL_K3S_VERSION, or offline from --offline-dir /
k3s.offlineDir holding k3s and install.sh, with INSTALL_K3S_SKIP_DOWNLOAD=true), or restart an
installed K3s when its config changed, and wait until the node is Ready. Then the kubeconfig is
fetched to kubeconfig/<cluster>.yaml (0600) with the server address rewritten.

The cluster token is never in the inventory: it is kept in ~/.config/k3s-etcd/tokens (0600); when
none is kept, a server's existing token is used, else a new one is generated. Refused: a server
whose token differs, K3s with --cluster-init, and SQLite state without a backup in backups/.
First shows what would change and asks (--yes to skip); --dry-run only shows it.

${SSH_HELP}`,
  options: {
    ...SSH_OPTIONS,
    host: { type: 'string', multiple: true },
    'offline-dir': { type: 'string' },
  },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const names = (ctx.values['host'] as unknown as string[] | undefined) ?? [];
    const hosts = selectK3sServers(cluster, names).map((h) => h.name);
    const offline = ctx.values['offline-dir'];
    const base = {
      ssh: await sshContext(ctx),
      hosts,
      tokens: fileTokenStore(ctx.global.inventory),
      workspaceDir: dirname(ctx.global.inventory),
      ...(typeof offline === 'string' ? { offlineDir: offline } : {}),
    };
    const preview = await installK3s(cluster, { ...base, dryRun: true, onLine: printer(ctx) });
    const gate = await previewGate(ctx, preview.runs, {
      nothing: `K3s is in place on ${preview.runs.length} server(s): nothing to do.`,
      question: (n, hosts) =>
        `Apply ${n} change(s) on ${hosts.join(', ')}, one server at a time (K3s restarts where its config changes)?`,
    });
    if (gate !== undefined) return gate;
    const result = await installK3s(cluster, { ...base, dryRun: false, onLine: printer(ctx) });
    if (!ctx.global.json && result.kubeconfig) ctx.io.out(`kubeconfig: ${result.kubeconfig}`);
    return report(ctx, result.runs, {
      token: result.token,
      ...(result.kubeconfig ? { kubeconfig: result.kubeconfig } : {}),
    });
  },
};

const k3sBackupCommand: Subcommand = {
  name: 'k3s backup',
  summary: "Back up a K3s server's SQLite state and token into backups/<host>/<UTC time>/",
  usage: 'k3s-etcd k3s backup [--host NAME]... [--accept-new-host-keys]',
  details: `Copies /var/lib/rancher/k3s/server/db/state.db with its -wal and -shm (with K3s stopped;
while K3s runs, through sqlite3's online backup when the host has sqlite3, else refused) and
/var/lib/rancher/k3s/server/token into the workspace, every file 0600 with a SHA-256 manifest
checked on both ends. Only reads the host. Every K3s server unless --host.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, host: { type: 'string', multiple: true } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const names = (ctx.values['host'] as unknown as string[] | undefined) ?? [];
    const ssh = await sshContext(ctx);
    const done: { host: string; dir: string }[] = [];
    // Ctrl+C stops the copy and cleans up (the host's staging copy, the partial folder).
    const cancel = cancelOnSigint(ctx);
    try {
      for (const h of names.length > 0 ? names : selectK3sServers(cluster).map((x) => x.name)) {
        const line = progressLine(ctx.global.json);
        const r = await backupK3s(cluster, h, {
          ssh,
          workspaceDir: dirname(ctx.global.inventory),
          signal: cancel.signal,
          onLine: printer(ctx),
          onProgress: (p) => line.update(`[${h}] ${backupProgressText(p)}`),
        }).finally(() => line.done());
        done.push({ host: h, dir: r.dir });
      }
    } finally {
      cancel.dispose();
    }
    if (ctx.global.json) json(ctx, done);
    return 0;
  },
};

const k3sRestoreCommand: Subcommand = {
  name: 'k3s restore',
  summary: "Put a backup of a K3s server's state back (K3s stopped), after a confirmation",
  usage: 'k3s-etcd k3s restore --host NAME [--from DIR] [--accept-new-host-keys] [--yes]',
  details: `Checks the backup against its manifest (the newest of backups/<host>/ unless --from),
refuses while K3s runs on the host, moves the files it replaces aside (*.before-restore-<time>),
writes the backup's files (0600) and checks them by SHA-256 on the host.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, host: { type: 'string' }, from: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const host = ctx.values['host'];
    if (typeof host !== 'string') throw new UsageError('k3s restore needs --host NAME');
    const workspaceDir = dirname(ctx.global.inventory);
    const from =
      typeof ctx.values['from'] === 'string'
        ? resolve(ctx.io.cwd, ctx.values['from'])
        : await latestBackup(workspaceDir, host);
    if (!from) throw new UsageError(`no backup of ${host} in ${workspaceDir}/backups/${host}`);
    const words = k3sRestoreConfirmation(host, from, await verifyBackup(from));
    if (!ctx.global.json) {
      ctx.io.out(words.backup);
      for (const f of words.files) ctx.io.out(`  ${f}`);
      ctx.io.out(words.note);
    }
    if (!(await confirm(ctx, words.question))) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const line = progressLine(ctx.global.json);
    const cancel = cancelOnSigint(ctx);
    const r = await restoreK3s(cluster, host, {
      ssh: await sshContext(ctx),
      workspaceDir,
      from,
      signal: cancel.signal,
      onLine: printer(ctx),
      onProgress: (p) => line.update(`[${host}] ${backupProgressText(p)}`),
    }).finally(() => {
      line.done();
      cancel.dispose();
    });
    if (ctx.global.json) json(ctx, r);
    return 0;
  },
};

const k3sKubeconfigCommand: Subcommand = {
  name: 'k3s kubeconfig',
  summary: "Fetch a K3s server's kubeconfig into kubeconfig/<cluster>.yaml (0600)",
  usage: 'k3s-etcd k3s kubeconfig [--host NAME] [--accept-new-host-keys]',
  details: `Reads /etc/rancher/k3s/k3s.yaml from the server (the first K3s server unless --host) with
sudo, rewrites the server address to the host's and the "default" names to the cluster's.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, host: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const name = ctx.values['host'];
    const [host] = selectK3sServers(cluster, typeof name === 'string' ? [name] : undefined);
    if (!host) throw new UsageError('no K3s server');
    const file = await fetchKubeconfig(cluster, host, {
      ssh: await sshContext(ctx),
      workspaceDir: dirname(ctx.global.inventory),
    });
    if (ctx.global.json) json(ctx, { kubeconfig: file });
    else ctx.io.out(`kubeconfig: ${file}\nexport KUBECONFIG=${file}`);
    return 0;
  },
};

export const K3S_COMMANDS: Subcommand[] = [
  k3sBackupCommand,
  k3sRestoreCommand,
  k3sInstallCommand,
  k3sKubeconfigCommand,
];
