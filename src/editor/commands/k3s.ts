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
import { progressText } from '../../core/migrate/progress';
import { etcdctlEnv, exportLines } from '../../core/etcd/etcdctlEnv';
import { planRestore, type RestorePlan } from '../../core/restore/plan';
import { listSnapshots, saveSnapshot } from '../../core/snapshot/snapshot';
import { restoreCommands, type SnapshotInfo } from '../../core/etcd/snapshotFile';
import type { Cluster, Host } from '../../core/inventory/types';
import { backupK3s, restoreK3s, verifyBackup } from '../../core/k3s/backup';
import { BACKUPS_DIR } from '../../core/files/workspace';
import { fetchKubeconfig, hasBackup, installK3s, readK3sFacts } from '../../core/k3s/ops';
import { selectK3sServers, k3sServers } from '../../core/inventory/select';
import { tokenSecret } from '../../core/k3sHost/token';
import { sshOpener } from '../../core/ssh/hostSession';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { humanBytes } from '../../shared/etcdTypes';
import { bytesReporter, withCancellableProgress } from '../progress';
import { restoreConfirmDetail, runConfirmedRestoreTask, runProvisionTask } from '../provisionTasks';
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
        onProgress: bytesReporter(report),
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
        onProgress: bytesReporter(report),
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
    const src = await withCancellableProgress(`Reading ${source}`, (report, signal) =>
      readSource(source, {
        ...(token ? { token } : {}),
        signal,
        onProgress: (p) => report(progressText(p)),
      }),
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
          onProgress: (p) => report(progressText(p)),
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

export function saveSnapshotCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const info = await withCancellableProgress(
      `Saving a snapshot of ${cluster.name}`,
      (report, signal) =>
        saveSnapshot(cluster, {
          workspaceDir: workspaceDir(ctx),
          signal,
          onProgress: (b) => report(humanBytes(b)),
        }),
    );
    ctx.log.info(`snapshot of ${cluster.name}: ${info.file} sha256 ${info.sha256}`);
    const next = await vscode.window.showInformationMessage(
      `Snapshot of ${cluster.name} saved: ${relative(workspaceDir(ctx), info.file)} (${Math.round(info.bytes / 1024)} KB, revision ${info.revision}).`,
      'Show Snapshots',
    );
    if (next) await showSnapshotsCommand(ctx, docs)(node);
  };
}

const snapshotTime = (s: SnapshotInfo) => s.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

function snapshotItems(ctx: ExtensionCtx, list: SnapshotInfo[]) {
  return list.map((s) => ({
    label: snapshotTime(s),
    description: `revision ${s.revision} · ${Math.round(s.bytes / 1024)} KB`,
    detail: relative(workspaceDir(ctx), s.file),
    s,
  }));
}

async function snapshotsOf(ctx: ExtensionCtx, cluster: Cluster): Promise<SnapshotInfo[]> {
  const list = await listSnapshots(workspaceDir(ctx), cluster.name);
  if (list.length === 0) {
    void vscode.window.showInformationMessage(
      `No snapshot of ${cluster.name} yet: use "Save etcd Snapshot".`,
    );
  }
  return list;
}

const RESTORE_BUTTON = 'Restore from This Snapshot…';

/** The restore's preview document: the steps in order and each member's command. */
async function showRestorePreview(
  docs: PlanDocuments | undefined,
  plan: RestorePlan,
): Promise<void> {
  if (!docs) return;
  const uri = vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${plan.cluster}-restore.md` });
  docs.set(
    uri,
    [
      `# Restore ${plan.cluster} from the snapshot of ${plan.snapshot.createdAt}`,
      '',
      `Snapshot ${plan.file}, revision ${plan.snapshot.revision}, ${plan.snapshot.bytes} bytes, sha256 ${plan.snapshot.sha256} (checked against its record).`,
      '',
      `"K3s etcd: Restore etcd from Snapshot…" runs it as a task after a confirmation (\`k3s-etcd snapshot restore --file ${plan.file}\` from a terminal), or run the commands below yourself.`,
      '',
      '## Steps',
      '',
      ...plan.steps.map((st, i) => `${i + 1}. ${st}`),
      '',
      `## The restore command on each member (as root, with etcd stopped on every member)`,
      '',
      ...plan.members.flatMap((m) => [
        `### ${m.host} (member ${m.member})`,
        '',
        '```sh',
        m.command,
        '```',
        '',
        `Then: \`mv ${m.dataDir} ${m.keptAs} && mv ${m.restoredDir} ${m.dataDir} && chown -R etcd:etcd ${m.dataDir}\`, and start etcd on every member.`,
        '',
      ]),
    ].join('\n'),
  );
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), {
    preview: false,
  });
}

/**
 * Restore from `info`: its SHA-256 checked and the plan previewed, then a modal naming the
 * cluster, the snapshot and the kept data dirs; "Restore" runs it as a task.
 */
async function restoreFrom(
  ctx: ExtensionCtx,
  docs: PlanDocuments | undefined,
  cluster: Cluster,
  info: SnapshotInfo,
  /** A plan already checked and shown in the preview (the snapshot is not hashed again). */
  shown?: RestorePlan,
): Promise<void> {
  let plan = shown;
  if (!plan) {
    plan = await withCancellableProgress(
      `Checking the snapshot of ${cluster.name} against its record`,
      () => planRestore(cluster, info.file),
    );
    await showRestorePreview(docs, plan);
  }
  const choice = await vscode.window.showWarningMessage(
    `Restore etcd cluster ${cluster.name} from the snapshot of ${snapshotTime(plan.snapshot)} (revision ${plan.snapshot.revision})?`,
    { modal: true, detail: restoreConfirmDetail(plan) },
    'Restore',
  );
  if (choice !== 'Restore') throw new CancelledError('Restore');
  ctx.log.info(`restore of ${cluster.name} from ${plan.file} confirmed`);
  await runConfirmedRestoreTask(ctx, plan);
}

export function restoreSnapshotCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const list = await snapshotsOf(ctx, cluster);
    if (list.length === 0) return;
    const picked = await vscode.window.showQuickPick(snapshotItems(ctx, list), {
      title: `Restore etcd cluster ${cluster.name} from which snapshot? (every member is stopped)`,
    });
    if (!picked) return;
    await restoreFrom(ctx, docs, cluster, picked.s);
  };
}

/**
 * A quick pick of the snapshots: picking one previews its restore; its button (or "Restore from
 * This Snapshot…" after the preview) starts the restore.
 */
async function pickSnapshot(
  ctx: ExtensionCtx,
  cluster: Cluster,
  list: SnapshotInfo[],
): Promise<{ s: SnapshotInfo; restore: boolean } | undefined> {
  const qp = vscode.window.createQuickPick<ReturnType<typeof snapshotItems>[number]>();
  const button: vscode.QuickInputButton = {
    iconPath: new vscode.ThemeIcon('history'),
    tooltip: 'Restore etcd from this snapshot…',
  };
  qp.title = `Snapshots of ${cluster.name}: pick one to preview its restore`;
  // Only an external etcd is restored from here (K3s restores its embedded etcd itself).
  const restorable = cluster.datastore === 'external-etcd';
  qp.items = snapshotItems(ctx, list).map((i) => ({ ...i, buttons: restorable ? [button] : [] }));
  try {
    return await new Promise((done) => {
      qp.onDidAccept(() => {
        const item = qp.selectedItems[0];
        done(item ? { s: item.s, restore: false } : undefined);
      });
      qp.onDidTriggerItemButton((e) => done({ s: e.item.s, restore: true }));
      qp.onDidHide(() => done(undefined));
      qp.show();
    });
  } finally {
    qp.dispose();
  }
}

/** K3s's embedded etcd: the per-member commands only, to read (K3s restores it itself). */
async function showCommandsOnly(
  docs: PlanDocuments | undefined,
  cluster: Cluster,
  s: SnapshotInfo,
): Promise<void> {
  if (!docs) return;
  const uri = vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${cluster.name}-restore.md` });
  docs.set(
    uri,
    [
      `# Restore ${cluster.name} from the snapshot of ${s.createdAt}`,
      '',
      `Snapshot ${s.file}, revision ${s.revision}, sha256 ${s.sha256}.`,
      '',
      'On every member host: stop etcd, copy the snapshot there, run its command, move the old data dir aside and put the restored one in its place; then start etcd on all members.',
      '',
      ...restoreCommands(cluster, s.file).flatMap((c) => [
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
}

export function showSnapshotsCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const list = await snapshotsOf(ctx, cluster);
    if (list.length === 0) return;
    const picked = await pickSnapshot(ctx, cluster, list);
    if (!picked) return;
    if (picked.restore) {
      await restoreFrom(ctx, docs, cluster, picked.s);
      return;
    }
    if (cluster.datastore !== 'external-etcd') {
      await showCommandsOnly(docs, cluster, picked.s);
      return;
    }
    const plan = await withCancellableProgress(
      `Checking the snapshot of ${cluster.name} against its record`,
      () => planRestore(cluster, picked.s.file),
    );
    await showRestorePreview(docs, plan);
    const next = await vscode.window.showInformationMessage(
      `The restore of ${cluster.name} from the snapshot of ${snapshotTime(plan.snapshot)} is in the preview. Nothing runs until you confirm.`,
      RESTORE_BUTTON,
    );
    if (next === RESTORE_BUTTON) await restoreFrom(ctx, docs, cluster, picked.s, plan);
  };
}
