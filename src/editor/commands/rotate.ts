/**
 * Rotate CA… (the CLI's `certs rotate-ca`), on the Certificates node and in the palette: runs the
 * phase that is due, one phase per confirmation. The plan is read first (in phase 1 the new CA is
 * made in memory only; every host dry-run) and shown in a modal with both CAs, what each host
 * gets and the rolling order; then the phase runs with progress and cancel. A phase stopped half
 * way (a failure or Cancel) is recorded per host, and running the command again goes on with the
 * hosts not done. After each phase the certificate check runs again so the tree shows what the
 * hosts hold, and the next phase is offered. The Certificates node shows the rotation's phase.
 */
import * as vscode from 'vscode';
import type { Cluster } from '../../core/inventory/types';
import { planRotate, runRotate, type RotatePlan } from '../../core/rotate/run';
import { rotateOutcomeLines, rotatePlanLines } from '../../core/rotate/words';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { rollOutCertificates } from '../rollout';
import { editorSshContext } from '../sshPrompts';
import { editorPkiOptions } from './certs';

const hostsOf = (plan: RotatePlan) =>
  `${plan.members.length} member(s)${plan.k3sServers.length > 0 ? ` and ${plan.k3sServers.length} K3s server(s)` : ''}`;

export function rotateCaCommand(ctx: ExtensionCtx) {
  const runPhase = async (cluster: Cluster): Promise<void> => {
    const ssh = await editorSshContext(ctx);
    const common = { ssh, pki: editorPkiOptions(ctx) };
    const plan = await withCancellableProgress(
      `Planning the CA rotation of ${cluster.name}`,
      (_r, signal) => planRotate(cluster, { ...common, signal }),
    );
    const lines = rotatePlanLines(plan);
    ctx.log.info(`CA rotation plan of ${cluster.name}:\n${lines.join('\n')}`);
    if (plan.refusal) throw new Error(`Not rotated: ${plan.refusal}`);
    const label = `Run Phase ${plan.phase}`;
    const choice = await vscode.window.showWarningMessage(
      `Run phase ${plan.phase} of 3 of the CA rotation of ${cluster.name} on ${hostsOf(plan)}, one at a time?`,
      { modal: true, detail: lines.join('\n') },
      label,
    );
    if (choice !== label) return;
    // rotation.json changes as hosts finish: the inventory service's pki watcher redraws the tree.
    const result = await rollOutCertificates(
      ctx,
      cluster,
      ssh,
      `CA rotation of ${cluster.name}, phase ${plan.phase} of 3`,
      (hooks) => runRotate(cluster, plan, { ...common, ...hooks }),
    );
    const outcome = rotateOutcomeLines(result);
    for (const l of outcome) ctx.log.info(l);
    if (!result.ok) throw new Error(outcome.join(' '));
    if (!result.next) {
      void vscode.window.showInformationMessage(
        `${cluster.name}: CA rotation finished; every host trusts only the new CA${result.oldCaKept ? ` (the old one is kept in ${result.oldCaKept}/ in the pki folder)` : ''}.`,
      );
      return;
    }
    const next = `Run Phase ${result.next}`;
    const go = await vscode.window.showInformationMessage(
      `${cluster.name}: phase ${result.phase} of the CA rotation done on every host. Phase ${result.next} can run now or later (Rotate CA… on the Certificates node).`,
      next,
    );
    if (go === next) await runPhase(cluster);
  };
  return async (node?: TreeNode): Promise<void> => runPhase(await resolveCluster(ctx, node));
}
