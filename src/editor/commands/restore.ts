/**
 * Restore etcd from a snapshot (the CLI's `snapshot restore` and `restore-commands`): the plan
 * checked and previewed, a modal naming what stops and what is kept, then the restore task with
 * that confirmation.
 */
import * as vscode from 'vscode';
import { CancelledError } from '../../core/errors';
import { planRestore, restorePlanText, type RestorePlan } from '../../core/restore/plan';
import { restoreCommands, type SnapshotInfo } from '../../core/etcd/snapshotFile';
import type { Cluster } from '../../core/inventory/types';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { resolveCluster, snapshotItems, snapshotsOf, snapshotTime } from '../pick';
import { withCancellableProgress } from '../progress';
import { runConfirmedRestoreTask } from '../tasks/provider';
import { restoreConfirmDetail } from '../tasks/restore';

const RESTORE_BUTTON = 'Restore from This Snapshot…';

/**
 * The restore's preview document: how to run it, then the plan in the core's words (the same
 * text `k3s-etcd snapshot restore` prints): the steps in order and each member's command.
 */
async function showRestorePreview(
  docs: PlanDocuments | undefined,
  plan: RestorePlan,
): Promise<void> {
  if (!docs) return;
  await showPlan(
    docs,
    planUri(`${plan.cluster}-restore.md`),
    [
      `# Restore ${plan.cluster} from the snapshot of ${snapshotTime(plan.snapshot)}`,
      '',
      `"K3s etcd: Restore etcd from Snapshot…" runs it as a task after a confirmation (\`k3s-etcd snapshot restore --file ${plan.file}\` from a terminal), or run the commands below yourself.`,
      '',
      '```text',
      ...restorePlanText(plan),
      '```',
      '',
    ].join('\n'),
  );
}

/**
 * Restore from `info`: its SHA-256 checked and the plan previewed, then a modal naming the
 * cluster, the snapshot and the kept data dirs; "Restore" runs it as a task.
 */
export async function restoreFrom(
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

/** K3s's embedded etcd: the per-member commands only, to read (K3s restores it itself). */
async function showCommandsOnly(
  docs: PlanDocuments | undefined,
  cluster: Cluster,
  s: SnapshotInfo,
): Promise<void> {
  if (!docs) return;
  await showPlan(
    docs,
    planUri(`${cluster.name}-restore.md`),
    [
      `# Restore ${cluster.name} from the snapshot of ${snapshotTime(s)}`,
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
}

/**
 * A snapshot picked in "Show Snapshots": its restore previewed (the plan checked against the
 * snapshot's record), then offered; for K3s's embedded etcd only the per-member commands.
 */
export async function previewRestore(
  ctx: ExtensionCtx,
  docs: PlanDocuments | undefined,
  cluster: Cluster,
  s: SnapshotInfo,
): Promise<void> {
  if (cluster.datastore !== 'external-etcd') {
    await showCommandsOnly(docs, cluster, s);
    return;
  }
  const plan = await withCancellableProgress(
    `Checking the snapshot of ${cluster.name} against its record`,
    () => planRestore(cluster, s.file),
  );
  await showRestorePreview(docs, plan);
  const next = await vscode.window.showInformationMessage(
    `The restore of ${cluster.name} from the snapshot of ${snapshotTime(plan.snapshot)} is in the preview. Nothing runs until you confirm.`,
    RESTORE_BUTTON,
  );
  if (next === RESTORE_BUTTON) await restoreFrom(ctx, docs, cluster, s, plan);
}
