/** Add and remove etcd members (the CLI's `member add|remove`). */
import * as vscode from 'vscode';
import { peerUrl } from '../../core/inventory/select';
import { addMember, removeMember } from '../../core/provision/members';
import { stepProgressText } from '../../core/plan/words';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { hostOf, pickEtcdHost, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';

export function addMemberCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Add which host as an etcd member?'));
    const choice = await vscode.window.showWarningMessage(
      `Add ${host.memberName} to etcd cluster ${cluster.name}?`,
      {
        modal: true,
        detail: `Runs "member add" with the peer URL ${peerUrl(cluster, host)} through a healthy member, then provisions ${host.name} joining as an existing-cluster member. The cluster's quorum grows with it: start the host right away.`,
      },
      'Add Member',
    );
    if (choice !== 'Add Member') return;
    const ssh = await editorSshContext(ctx);
    const result = await withCancellableProgress(
      `Adding ${host.memberName} to ${cluster.name}`,
      (report, signal) =>
        addMember(cluster, host.name, {
          dryRun: false,
          ssh,
          signal,
          onLine: (_h, l) => ctx.log.info(`[${host.name}] ${l}`),
          onStep: (h, s) => {
            if (s.status === 'pending') report(stepProgressText(h, s));
          },
        }),
    );
    void ctx.health.refreshAll();
    const run = result.runs[0];
    if (!run || run.status === 'failed' || result.healthy === false) {
      throw new Error(
        run?.error?.message ??
          `member ${result.memberId} added, but it is not healthy: ${result.healthSummary ?? ''}`,
      );
    }
    void vscode.window.showInformationMessage(
      `${host.memberName} (${result.memberId}) joined ${cluster.name}: ${result.healthSummary ?? 'healthy'}.`,
    );
  };
}

export function removeMemberCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Remove which etcd member?'));
    const choice = await vscode.window.showWarningMessage(
      `Remove etcd member ${host.memberName} from ${cluster.name}?`,
      {
        modal: true,
        detail: `Runs "member remove" through another member (refused if quorum would be lost), then stops and disables etcd on ${host.name}. Its data dir ${cluster.etcd.dataDir} is moved aside and kept, unless you choose to delete it.`,
      },
      'Remove, Keep Data',
      'Remove and Delete Data…',
    );
    if (!choice) return;
    let purge = false;
    if (choice === 'Remove and Delete Data…') {
      const sure = await vscode.window.showWarningMessage(
        `Delete ${cluster.etcd.dataDir} on ${host.name} for good?`,
        {
          modal: true,
          detail: 'This cannot be undone. The cluster keeps its data on the other members.',
        },
        'Delete Data',
      );
      if (sure !== 'Delete Data') return;
      purge = true;
    }
    const ssh = await editorSshContext(ctx);
    const r = await withCancellableProgress(
      `Removing ${host.memberName} from ${cluster.name}`,
      (_report, signal) =>
        removeMember(cluster, host.name, {
          dryRun: false,
          purgeData: purge,
          ssh,
          signal,
          onLine: (_h, l) => ctx.log.info(`[${host.name}] ${l}`),
        }),
    );
    void ctx.health.refreshAll();
    void vscode.window.showInformationMessage(
      `${host.memberName}${r.memberId ? ` (${r.memberId})` : ''} removed from ${cluster.name}. ${r.lines.at(-1) ?? ''}`,
    );
  };
}
