/** Add, remove and replace etcd members (the CLI's `member add|remove|replace`). */
import * as vscode from 'vscode';
import { peerUrl, spareHosts } from '../../core/inventory/select';
import { addMember, removeMember } from '../../core/provision/members';
import { stepProgressText } from '../../core/plan/words';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { hostOf, pickEtcdHost, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';
import { planReplace, replaceMember } from '../../core/recover/replace';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';

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

/**
 * "Replace Member…" (the CLI's `member replace`): where the replacement goes (its own host after
 * a disk loss, or a host of the inventory without the etcd role), the steps shown rendered and
 * in a modal, then the replacement with progress and cancel.
 */
export function replaceMemberCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Replace which etcd member?'));
    const spares = spareHosts(cluster);
    type Where = vscode.QuickPickItem & { host?: string };
    const where = await vscode.window.showQuickPick<Where>(
      [
        {
          label: `$(debug-restart) On ${host.name} itself`,
          description: host.address,
          detail: 'After a disk loss or a broken database: a fresh data dir, a new member ID',
        },
        ...spares.map((h) => ({
          label: `$(server) On ${h.name}`,
          description: `${h.address} · ${h.roles.join(', ')}`,
          detail: `${h.name} gets the member certificates and the etcd role; K3s servers are re-pointed`,
          host: h.name,
        })),
      ],
      {
        title: `Replace etcd member ${host.memberName} of ${cluster.name}`,
        placeHolder: spares.length
          ? 'Where does the replacement run?'
          : `Where does the replacement run? (other hosts need an entry in k3s-etcd.yaml without the etcd role)`,
      },
    );
    if (!where) return;
    const plan = await withCancellableProgress(`Reading ${cluster.name}`, (_r, signal) =>
      planReplace(cluster, host.name, { ...(where.host ? { newHost: where.host } : {}), signal }),
    );
    const steps = plan.lines.map((l, i) => `${i + 1}. ${l}`);
    if (docs)
      await showPlan(
        docs,
        planUri(`replace-${cluster.name}-${plan.old.member}.md`),
        [
          `# Replace ${plan.old.member} of ${cluster.name}`,
          '',
          '```text',
          ...steps,
          '```',
          '',
        ].join('\n'),
      );
    const choice = await vscode.window.showWarningMessage(
      `Replace ${plan.old.member}${plan.old.id ? ` (${plan.old.id})` : ''} on ${plan.target.sameHost ? `its own host ${plan.target.host}` : plan.target.host}?`,
      {
        modal: true,
        detail: [
          ...steps,
          '',
          `${plan.target.host} is checked first; nothing is removed if it cannot be provisioned. The replacement joins as a learner, so the quorum never depends on it while it catches up.`,
        ].join('\n'),
      },
      'Replace Member',
    );
    if (choice !== 'Replace Member') return;
    const ssh = await editorSshContext(ctx);
    const file = (ctx.inventory.current() as { file: string }).file;
    const r = await withCancellableProgress(
      `Replacing ${plan.old.member} of ${cluster.name}`,
      (report, signal) =>
        replaceMember(cluster, plan, {
          ssh,
          signal,
          inventoryFile: file,
          onLine: (h, l) => {
            ctx.log.info(`[${h}] ${l}`);
            if (!/^(==>|<==)/.test(l)) report(`${h}: ${l}`);
          },
        }),
    );
    void ctx.health.refreshAll();
    const say = r.healthy ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    void say(
      `${plan.target.member} joined ${cluster.name} as ${r.memberId}${r.promoted ? ' and is a voter' : ''}: ${r.healthSummary ?? (r.healthy ? 'healthy' : 'not healthy yet')}.`,
    );
  };
}
