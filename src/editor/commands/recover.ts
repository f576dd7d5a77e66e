/**
 * Recover Cluster… (the CLI's `recover`): every member read, the survivor chosen and the dry run
 * shown as a plan, then a modal naming the survivor with its raft index and what each other
 * member's data becomes; "Recover" runs it with progress and cancel.
 */
import * as vscode from 'vscode';
import { CancelledError } from '../../core/errors';
import { stepProgressText } from '../../core/plan/words';
import { detectCluster } from '../../core/recover/detect';
import {
  planRecover,
  recoverConfirmDetail,
  recoverPlanText,
  recoverQuestion,
} from '../../core/recover/plan';
import { notRejoinedWords, recoverCluster } from '../../core/recover/run';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { showRunPreview, type PlanDocuments } from '../planDocuments';
import { resolveCluster, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';

const RECOVER_BUTTON = 'Recover';

export function recoverClusterCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const ssh = await editorSshContext(ctx);
    const dir = workspaceDir(ctx);
    const { plan, preview } = await withCancellableProgress(
      `Reading every member of ${cluster.name}`,
      async (report, signal) => {
        const detection = await detectCluster(cluster, { ssh, signal });
        report('choosing the survivor');
        const plan = planRecover(cluster, detection);
        report(`dry run on the hosts (survivor ${plan.survivor.host})`);
        const preview = await recoverCluster(cluster, plan, {
          ssh,
          workspaceDir: dir,
          dryRun: true,
          signal,
        });
        return { plan, preview };
      },
    );
    for (const l of recoverPlanText(plan)) ctx.log.info(l);
    if (docs)
      await showRunPreview(
        docs,
        `${cluster.name}-recover`,
        `Recover ${cluster.name} from ${plan.survivor.host}`,
        preview.runs,
        'K3s etcd: Recover Cluster…',
        [{ heading: 'The recovery', lines: recoverPlanText(plan) }],
      );
    const blocked = preview.runs.find((r) => r.status === 'failed' || r.status === 'cancelled');
    if (blocked)
      throw new Error(
        `${blocked.error?.message ?? `${blocked.host}: ${blocked.status}`}. A host is not ready for the recovery: nothing was changed.`,
      );
    const choice = await vscode.window.showWarningMessage(
      recoverQuestion(plan),
      { modal: true, detail: recoverConfirmDetail(plan) },
      RECOVER_BUTTON,
    );
    if (choice !== RECOVER_BUTTON) throw new CancelledError('Recovery');
    ctx.log.info(`recovery of ${cluster.name} from ${plan.survivor.host} confirmed`);
    const result = await withCancellableProgress(
      `Recovering ${cluster.name} from ${plan.survivor.host}`,
      (report, signal) =>
        recoverCluster(cluster, plan, {
          ssh,
          workspaceDir: dir,
          dryRun: false,
          signal,
          onPhase: (_p, n, title) => {
            report(`${n}/5: ${title}`);
            ctx.log.info(`== recover ${n}/5: ${title}`);
          },
          onLine: (h, l) => ctx.log.info(`[${h}] ${l}`),
          onStep: (h, s) => {
            if (s.status === 'pending') report(stepProgressText(h, s));
          },
        }),
    );
    void ctx.health.refreshAll();
    const missing = notRejoinedWords(result);
    for (const l of missing) ctx.log.warn(l);
    const next =
      plan.k3sServers.length > 0
        ? ` Restart K3s on ${plan.k3sServers.join(', ')}, one server at a time.`
        : '';
    if (!result.healthy || result.notRejoined.length > 0)
      throw new Error(
        `${cluster.name} runs again from ${plan.survivor.host}, but: ${[...missing, result.healthy ? '' : `not every member is healthy (${result.healthSummary ?? ''})`].filter(Boolean).join('; ')}.${next}`,
      );
    void vscode.window.showInformationMessage(
      `${cluster.name} recovered from ${plan.survivor.host}: ${result.healthSummary ?? 'healthy'}, revision ${result.revision ?? 'unknown'}.${next}`,
    );
  };
}
