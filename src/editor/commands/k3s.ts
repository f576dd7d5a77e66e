/**
 * K3s on the external etcd from the editor: install or re-point servers (the `k3s-etcd` task,
 * after offering a backup of SQLite state), back up and restore K3s's state, fetch the
 * kubeconfig, and the etcdctl terminal / environment for the cluster.
 */
import * as vscode from 'vscode';
import { dirname, join, relative } from 'node:path';
import { readdir } from 'node:fs/promises';
import { CancelledError, K3sEtcdError } from '../../core/errors';
import {
  migrateToEtcd,
  migrationReport,
  readSource,
  saveReport,
  sourceToken,
} from '../../core/migrate/migrate';
import { etcdctlEnv, exportLines } from '../../core/etcd/etcdctlEnv';
import { listSnapshots, restoreCommands, saveSnapshot } from '../../core/etcd/snapshot';
import type { Cluster, Host } from '../../core/inventory/types';
import { backupK3s, restoreK3s, verifyBackup } from '../../core/k3s/backup';
import {
  BACKUPS_DIR,
  fetchKubeconfig,
  hasBackup,
  installK3s,
  readK3sFacts,
  selectK3sServers,
} from '../../core/k3s/ops';
import { k3sServers, tokenSecret } from '../../core/k3s/server';
import { sshOpener } from '../../core/provision/etcdOps';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { withCancellableProgress } from '../progress';
import { runProvisionTask } from '../provisionTasks';
import { secretTokenStore } from '../tokenStore';
import { PLAN_SCHEME, previewText, type PlanDocuments } from './provision';
import { editorSshContext } from '../sshPrompts';
import { resolveCluster } from './cluster';

function workspaceDir(ctx: ExtensionCtx): string {
  return dirname((ctx.inventory.current() as { file: string }).file);
}

/** The K3s server the node names, or one picked from the cluster's. */
async function serverFor(cluster: Cluster, node: TreeNode | undefined, title: string) {
  if (node && (node.kind === 'host' || node.kind === 'role')) {
    const [h] = selectK3sServers(cluster, [node.host]);
    if (h) return h;
  }
  const servers = selectK3sServers(cluster);
  if (servers.length === 1) return servers[0] as Host;
  const picked = await vscode.window.showQuickPick(
    servers.map((h) => ({ label: h.name, description: h.address, host: h })),
    { title },
  );
  if (!picked) throw new CancelledError(title);
  return picked.host;
}

async function backUp(ctx: ExtensionCtx, cluster: Cluster, host: Host): Promise<string> {
  const ssh = await editorSshContext(ctx);
  const r = await withCancellableProgress(
    `Backing up K3s state of ${host.name}`,
    (report, signal) =>
      backupK3s(cluster, host.name, {
        ssh,
        signal,
        workspaceDir: workspaceDir(ctx),
        onLine: (h, l) => {
          ctx.log.info(`[${h}] ${l}`);
          report(l);
        },
      }),
  );
  return r.dir;
}

export function installK3sCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const only =
      node && (node.kind === 'host' || node.kind === 'role')
        ? selectK3sServers(cluster, [node.host])
        : selectK3sServers(cluster);
    // Offered before re-pointing: a server that keeps SQLite state and has no backup yet.
    const ssh = await editorSshContext(ctx);
    const unsaved = await withCancellableProgress('Checking K3s servers', async (_r, signal) => {
      const out: Host[] = [];
      for (const h of only) {
        if (await hasBackup(workspaceDir(ctx), h.name)) continue;
        const t = await sshOpener(cluster, h, ssh)(signal);
        try {
          if ((await readK3sFacts(t, h, signal)).sqliteBytes !== undefined) out.push(h);
        } finally {
          t.close();
        }
      }
      return out;
    });
    for (const h of unsaved) {
      const choice = await vscode.window.showWarningMessage(
        `K3s on ${h.name} keeps its state in SQLite and there is no backup of it yet.`,
        {
          modal: true,
          detail:
            'Pointing K3s at etcd does not carry that state over. Back it up into backups/ first (state.db with its WAL, and the token); K3s must be stopped, or the host needs sqlite3.',
        },
        'Back Up Now',
      );
      if (choice !== 'Back Up Now') return;
      await backUp(ctx, cluster, h);
    }
    await runProvisionTask(
      ctx,
      cluster.name,
      node && (node.kind === 'host' || node.kind === 'role') ? node.host : undefined,
      'install-k3s',
    );
  };
}

export function backupK3sCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host = await serverFor(cluster, node, 'Back up the K3s state of which server?');
    const dir = await backUp(ctx, cluster, host);
    const open = await vscode.window.showInformationMessage(
      `K3s state of ${host.name} backed up to ${relative(workspaceDir(ctx), dir)}.`,
      'Reveal',
    );
    if (open === 'Reveal')
      await vscode.commands.executeCommand(
        'revealFileInOS',
        vscode.Uri.file(join(dir, 'manifest.json')),
      );
  };
}

export function restoreK3sCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host = await serverFor(cluster, node, 'Restore the K3s state of which server?');
    const root = join(workspaceDir(ctx), BACKUPS_DIR, host.name);
    const stamps = (await readdir(root).catch(() => [] as string[])).sort().reverse();
    if (stamps.length === 0)
      throw new Error(
        `No backup of ${host.name} in ${BACKUPS_DIR}/${host.name}: back it up first.`,
      );
    const picked = await vscode.window.showQuickPick(
      stamps.map((s) => ({ label: s, description: s === stamps[0] ? 'newest' : '' })),
      { title: `Restore which backup of ${host.name}?` },
    );
    if (!picked) return;
    const dir = join(root, picked.label);
    const manifest = await verifyBackup(dir);
    const choice = await vscode.window.showWarningMessage(
      `Restore ${host.name}'s K3s state from ${picked.label}?`,
      {
        modal: true,
        detail: [
          `${manifest.method}, ${manifest.createdAt}. Files written (0600):`,
          ...manifest.files.map((f) => `• ${f.path} (${f.bytes} bytes)`),
          '',
          'K3s must be stopped on the host. The files replaced are moved aside (*.before-restore-<time>), not deleted.',
        ].join('\n'),
      },
      'Restore',
    );
    if (choice !== 'Restore') return;
    const ssh = await editorSshContext(ctx);
    const r = await withCancellableProgress(`Restoring ${host.name}`, (report, signal) =>
      restoreK3s(cluster, host.name, {
        ssh,
        signal,
        from: dir,
        workspaceDir: workspaceDir(ctx),
        onLine: (h, l) => {
          ctx.log.info(`[${h}] ${l}`);
          report(l);
        },
      }),
    );
    void vscode.window.showInformationMessage(
      `Restored ${r.manifest.files.length} file(s) on ${host.name}; the previous ones are kept beside them. Start K3s when ready (sudo systemctl start k3s).`,
    );
  };
}

export function fetchKubeconfigCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host = await serverFor(cluster, node, 'Fetch the kubeconfig of which server?');
    const ssh = await editorSshContext(ctx);
    const file = await withCancellableProgress(
      `Fetching the kubeconfig of ${host.name}`,
      (_r, signal) =>
        fetchKubeconfig(cluster, host, { ssh, signal, workspaceDir: workspaceDir(ctx) }),
    );
    const open = await vscode.window.showInformationMessage(
      `Kubeconfig of ${cluster.name} written to ${relative(workspaceDir(ctx), file)} (0600).`,
      'Open',
    );
    if (open === 'Open') await vscode.window.showTextDocument(vscode.Uri.file(file));
  };
}

export function openEtcdctlTerminalCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const env = await etcdctlEnv(cluster);
    const terminal = vscode.window.createTerminal({
      name: `etcdctl (${cluster.name})`,
      env,
      iconPath: new vscode.ThemeIcon('database'),
      message: `ETCDCTL_* point at ${cluster.name}: try etcdctl endpoint health, etcdctl member list -w table`,
    });
    terminal.show();
  };
}

export function copyEtcdctlEnvCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    await vscode.env.clipboard.writeText(`${exportLines(await etcdctlEnv(cluster))}\n`);
    void vscode.window.showInformationMessage(
      `etcdctl environment of ${cluster.name} copied: paste it into a shell or profile.`,
    );
  };
}

export function refreshK3sStateCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const ssh = await editorSshContext(ctx);
    const states = await withCancellableProgress(
      `Reading K3s servers of ${cluster.name}`,
      (_r, signal) => ctx.k3s.refresh(cluster, ssh, signal),
    );
    const failed = states.filter((s) => s.error);
    if (failed.length > 0)
      void vscode.window.showWarningMessage(
        `${failed.length} K3s server(s) of ${cluster.name} could not be read: ${failed.map((s) => s.error).join('; ')}`,
      );
  };
}

export function previewK3sPlanCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const only = node && (node.kind === 'host' || node.kind === 'role') ? [node.host] : undefined;
    const hosts = selectK3sServers(cluster, only).map((h) => h.name);
    const ssh = await editorSshContext(ctx);
    const file = (ctx.inventory.current() as { file: string }).file;
    const result = await withCancellableProgress(
      `Reading ${hosts.length} K3s server(s) of ${cluster.name}`,
      (report, signal) =>
        installK3s(cluster, {
          dryRun: true,
          ssh,
          hosts,
          signal,
          tokens: secretTokenStore(ctx, file),
          workspaceDir: dirname(file),
          onStep: (h, st) => report(`${h}: ${st.title}`),
        }),
    );
    const uri = vscode.Uri.from({
      scheme: PLAN_SCHEME,
      path: `/${cluster.name}${only ? `-${only[0]}` : ''}-k3s-plan.md`,
    });
    docs.set(
      uri,
      previewText(
        `K3s on the external etcd: plan for cluster ${cluster.name} (one server at a time)`,
        result.runs,
        'K3s etcd: Install or Re-point K3s on etcd',
      ),
    );
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), {
      preview: false,
    });
  };
}

export function migrateSqliteCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const ws = workspaceDir(ctx);
    // The source: a backup of one of the cluster's servers, or a state.db chosen by hand.
    const backups: { label: string; description: string; path: string }[] = [];
    for (const h of k3sServers(cluster)) {
      const root = join(ws, BACKUPS_DIR, h.name);
      for (const stamp of (await readdir(root).catch(() => [] as string[])).sort().reverse()) {
        backups.push({
          label: `${h.name} ${stamp}`,
          description: 'backup',
          path: join(root, stamp, 'state.db'),
        });
      }
    }
    const choose = { label: 'Choose a state.db…', description: '', path: '' };
    const picked = await vscode.window.showQuickPick([...backups, choose], {
      title: `Migrate which SQLite state into the etcd of ${cluster.name}?`,
    });
    if (!picked) return;
    let source = picked.path;
    if (!source) {
      const files = await vscode.window.showOpenDialog({
        title: "K3s's state.db (K3s stopped; its -wal and -shm beside it)",
        canSelectMany: false,
        filters: { SQLite: ['db'] },
      });
      if (!files?.[0]) return;
      source = files[0].fsPath;
    }
    let token = await sourceToken(source);
    if (!token) {
      token = await vscode.window.showInputBox({
        title: 'K3s server token',
        prompt:
          "The token of the server that wrote this state (/var/lib/rancher/k3s/server/token): it must open the state's /bootstrap key. Leave empty if the state has none.",
        password: true,
        ignoreFocusOut: true,
      });
      if (token === undefined) return;
    }
    const src = await withCancellableProgress(`Reading ${source}`, () =>
      readSource(source, token ? { token } : {}),
    );
    const reportUri = vscode.Uri.from({
      scheme: PLAN_SCHEME,
      path: `/${cluster.name}-migration-dry-run.md`,
    });
    docs.set(reportUri, migrationReport(cluster.name, src));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(reportUri), {
      preview: false,
    });
    const go = await vscode.window.showWarningMessage(
      `Write ${src.pre.liveKeys} key(s) into the etcd of ${cluster.name}?`,
      {
        modal: true,
        detail: `From ${src.pre.rows} history rows (revision ${src.pre.currentRevision}). ${src.token.note}. Create-only: an existing key is never overwritten; the result is verified by count and SHA-256.`,
      },
      'Migrate',
    );
    if (go !== 'Migrate') return;
    const run = (force: boolean) =>
      withCancellableProgress(`Migrating into ${cluster.name}`, (report, signal) =>
        migrateToEtcd(cluster, src, {
          force,
          signal,
          onProgress: (p) => report(`${p.done}/${p.total} keys`),
        }),
      );
    let result;
    try {
      result = await run(false);
    } catch (err) {
      if (!(err instanceof K3sEtcdError && err.code === 'migrate-target')) throw err;
      const again = await vscode.window.showWarningMessage(
        err.message,
        { modal: true },
        'Add Only Missing Keys',
      );
      if (again !== 'Add Only Missing Keys') return;
      result = await run(true);
    }
    const file = await saveReport(ws, migrationReport(cluster.name, src, result));
    await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false });
    const msg = `${result.write.written} key(s) written, ${result.write.alreadyThere} already there; verified: ${result.verify.ok ? 'same keys, same bytes' : 'NO'}.`;
    if (result.verify.ok && result.write.conflicts.length === 0) {
      // The cut-over, offered: K3s on this etcd with the same token, never cluster-init.
      const next = await vscode.window.showInformationMessage(
        msg,
        'Point K3s at etcd (same token)…',
      );
      if (next) {
        if (token) {
          const file = (ctx.inventory.current() as { file: string }).file;
          await secretTokenStore(ctx, file).set(cluster.name, tokenSecret(token));
        }
        await installK3sCommand(ctx)(node);
      }
    } else throw new Error(`${msg} Conflicts: ${result.write.conflicts.join(', ') || 'none'}`);
  };
}

export function saveSnapshotCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const info = await withCancellableProgress(
      `Saving a snapshot of ${cluster.name}`,
      (report, signal) =>
        saveSnapshot(cluster, {
          workspaceDir: workspaceDir(ctx),
          signal,
          onProgress: (b) => report(`${Math.round(b / 1024)} KB`),
        }),
    );
    ctx.log.info(`snapshot of ${cluster.name}: ${info.file} sha256 ${info.sha256}`);
    const next = await vscode.window.showInformationMessage(
      `Snapshot of ${cluster.name} saved: ${relative(workspaceDir(ctx), info.file)} (${Math.round(info.bytes / 1024)} KB, revision ${info.revision}).`,
      'Show Snapshots',
    );
    if (next) await showSnapshotsCommand(ctx, undefined)(node);
  };
}

export function showSnapshotsCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const list = await listSnapshots(workspaceDir(ctx), cluster.name);
    if (list.length === 0) {
      void vscode.window.showInformationMessage(
        `No snapshot of ${cluster.name} yet: use "Save etcd Snapshot".`,
      );
      return;
    }
    const picked = await vscode.window.showQuickPick(
      list.map((s) => ({
        label: s.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
        description: `revision ${s.revision} · ${Math.round(s.bytes / 1024)} KB`,
        detail: relative(workspaceDir(ctx), s.file),
        s,
      })),
      { title: `Snapshots of ${cluster.name}: pick one to preview its restore commands` },
    );
    if (!picked || !docs) return;
    const cmds = restoreCommands(cluster, picked.s.file);
    const uri = vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${cluster.name}-restore.md` });
    docs.set(
      uri,
      [
        `# Restore ${cluster.name} from the snapshot of ${picked.s.createdAt}`,
        '',
        `Snapshot ${picked.s.file}, revision ${picked.s.revision}, sha256 ${picked.s.sha256}.`,
        '',
        'On every member host: stop etcd, copy the snapshot there, run its command, move the old data dir aside and put the restored one in its place; then start etcd on all members.',
        '',
        ...cmds.flatMap((c) => [
          `## ${c.host} (member ${c.member})`,
          '',
          '```sh',
          c.command,
          '```',
          '',
        ]),
      ].join('\n'),
    );
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), {
      preview: false,
    });
  };
}
