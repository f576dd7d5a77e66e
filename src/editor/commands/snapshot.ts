/**
 * etcd snapshots from the editor (the CLI's `snapshot save|list`): save one into the workspace,
 * and list them in a quick pick where picking one previews its restore.
 */
import * as vscode from 'vscode';
import { relative } from 'node:path';
import { saveSnapshot } from '../../core/snapshot/snapshot';
import { type SnapshotInfo } from '../../core/etcd/snapshotFile';
import type { Cluster } from '../../core/inventory/types';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { humanBytes } from '../../shared/etcdTypes';
import type { PlanDocuments } from '../planDocuments';
import { resolveCluster, snapshotItems, snapshotsOf, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { previewRestore, restoreFrom } from './restore';

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
    await previewRestore(ctx, docs, cluster, picked.s);
  };
}
