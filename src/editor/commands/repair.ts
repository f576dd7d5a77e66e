/** Repair a member whose host's address changed (the CLI's `member fix-peer-url`). */
import * as vscode from 'vscode';
import { isIpOrHostname } from '../../core/inventory/addressFormat';
import { diagnosePeerUrl, fixPeerUrl, repairPlanLines } from '../../core/repair/peerUrl';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { hostOf, pickEtcdHost, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';

export function fixPeerUrlCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Fix the peer URL of which member?'));
    const given = await vscode.window.showInputBox({
      title: `Fix peer URL of ${host.memberName}`,
      prompt: `The new address of ${host.name} (now ${host.address} in k3s-etcd.yaml). Leave empty to read it from the host over SSH.`,
      placeHolder: 'for example 10.10.3.120',
      ignoreFocusOut: true,
      validateInput: (v) =>
        v === '' || isIpOrHostname(v.trim())
          ? undefined
          : 'An IPv4 or IPv6 address, or a host name',
    });
    if (given === undefined) return;
    const ssh = await editorSshContext(ctx);
    const d = await withCancellableProgress(`Checking ${host.memberName}`, (_r, signal) =>
      diagnosePeerUrl(cluster, host.name, {
        ssh,
        signal,
        ...(given.trim() ? { newAddress: given.trim() } : {}),
      }),
    );
    ctx.log.info(`fix peer URL ${host.memberName}: ${JSON.stringify(d)}`);
    if (d.stale.length === 0) {
      void vscode.window.showInformationMessage(
        `${host.memberName} is up to date at ${d.newAddress}: nothing to fix.`,
      );
      return;
    }
    if (!d.quorum.ok)
      throw new Error(
        `Repairing ${host.memberName} is refused: ${d.quorum.why}. Bring the other members back first.`,
      );
    const plan = repairPlanLines(d);
    const choice = await vscode.window.showWarningMessage(
      `Update member ${d.memberId ?? d.member} to ${d.newPeerUrl}?`,
      {
        modal: true,
        detail: [
          'Stale now:',
          ...plan.stale.map((s) => `• ${s}`),
          '',
          'The repair:',
          ...plan.steps,
        ].join('\n'),
      },
      'Fix Peer URL',
    );
    if (choice !== 'Fix Peer URL') return;
    const result = await withCancellableProgress(`Repairing ${host.memberName}`, (report, signal) =>
      fixPeerUrl(cluster, d, {
        ssh,
        signal,
        inventoryFile: (ctx.inventory.current() as { file: string }).file,
        onLine: (h, l) => {
          ctx.log.info(`[${h}] ${l}`);
          if (/^\d\. /.test(l)) report(l);
        },
      }),
    );
    void ctx.health.refreshAll();
    if (result.next && d.datastore === 'k3s-embedded-etcd') {
      void vscode.window.showInformationMessage(
        `${host.memberName} now at ${d.newPeerUrl} in the member list. ${result.next}`,
      );
      return;
    }
    if (!result.healthy)
      throw new Error(`The repair ran but the member is not healthy yet: ${result.summary}`);
    void vscode.window.showInformationMessage(
      `${host.memberName} now at ${d.newPeerUrl}: ${result.summary}.${result.next ? ` ${result.next}` : ''}`,
    );
  };
}
