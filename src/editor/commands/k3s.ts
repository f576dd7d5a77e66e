/**
 * K3s on the external etcd from the editor: install or re-point servers (the `k3s-etcd` task,
 * after offering a backup of SQLite state), preview that plan, back up and restore K3s's state,
 * fetch the kubeconfig, and read the servers' state for the tree.
 */
import * as vscode from 'vscode';
import { dirname, join, relative } from 'node:path';
import { CancelledError } from '../../core/errors';
import type { Cluster, Host } from '../../core/inventory/types';
import { backupK3s, restoreK3s, verifyBackup } from '../../core/k3s/backup';
import { k3sRestoreConfirmation } from '../../core/k3s/words';
import {
  fetchKubeconfig,
  hasBackup,
  installK3s,
  listBackups,
  readK3sFacts,
} from '../../core/k3s/ops';
import { BACKUPS_DIR } from '../../core/files/workspace';
import { selectK3sServers } from '../../core/inventory/select';
import { sshOpener } from '../../core/ssh/hostSession';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { showRunPreview, type PlanDocuments } from '../planDocuments';
import { stepProgressText } from '../../core/plan/words';
import { resolveCluster, workspaceDir } from '../pick';
import { bytesReporter, withCancellableProgress } from '../progress';
import { runProvisionTask } from '../tasks/provider';
import { secretTokenStore } from '../tokenStore';
import { editorSshContext } from '../sshPrompts';
import { placementOf } from '../tasks/here';

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
    const backups = await listBackups(workspaceDir(ctx), host.name);
    if (backups.length === 0)
      throw new Error(
        `No backup of ${host.name} in ${BACKUPS_DIR}/${host.name}: back it up first.`,
      );
    const picked = await vscode.window.showQuickPick(
      backups.map((b, i) => ({ label: b.stamp, description: i === 0 ? 'newest' : '', dir: b.dir })),
      { title: `Restore which backup of ${host.name}?` },
    );
    if (!picked) return;
    const dir = picked.dir;
    const words = k3sRestoreConfirmation(host.name, picked.label, await verifyBackup(dir));
    const choice = await vscode.window.showWarningMessage(
      words.question,
      {
        modal: true,
        detail: [words.backup, ...words.files.map((f) => `• ${f}`), '', words.note].join('\n'),
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
    const servers = selectK3sServers(cluster, only);
    const hosts = servers.map((h) => h.name);
    const ssh = await editorSshContext(ctx);
    const file = (ctx.inventory.current() as { file: string }).file;
    // As the provisioning preview: the server this window runs on is read here, through sudo.
    const place = await placementOf(ctx, cluster, servers);
    const result = await Promise.resolve(
      withCancellableProgress(
        `Reading ${hosts.length} K3s server(s) of ${cluster.name}`,
        (report, signal) =>
          installK3s(cluster, {
            dryRun: true,
            ssh,
            hosts,
            signal,
            tokens: secretTokenStore(ctx, file),
            workspaceDir: dirname(file),
            ...(place.here ? { here: place.here } : {}),
            onStep: (h, st) => {
              if (st.status === 'pending') report(stepProgressText(h, st));
            },
          }),
      ),
    ).finally(() => place.close());
    await showRunPreview(
      docs,
      `${cluster.name}${only ? `-${only[0]}` : ''}-k3s-plan`,
      `K3s on the external etcd: plan for cluster ${cluster.name} (one server at a time)`,
      result.runs,
      'K3s etcd: Install or Re-point K3s on etcd',
      [{ heading: 'Where the steps run', lines: place.lines }],
    );
  };
}
