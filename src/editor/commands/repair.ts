/**
 * Repair a member whose host's address changed (the CLI's `member fix-peer-url`). When this
 * window runs on the member's host, its reads and steps run here (root through sudo in a
 * terminal of its own, asked once for the whole repair) and nothing goes over SSH to it.
 */
import * as vscode from 'vscode';
import { isIpOrHostname } from '../../core/inventory/addressFormat';
import type { Cluster, Host } from '../../core/inventory/types';
import {
  diagnosePeerUrl,
  fixPeerUrl,
  repairPlanLines,
  type PeerUrlDiagnosis,
} from '../../core/repair/peerUrl';
import type { SshContext } from '../../core/ssh/hostSession';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { hostOf, pickEtcdHost, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';
import { placementOf, type TaskPlacement } from '../tasks/here';

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
    let place: TaskPlacement | undefined;
    try {
      const d = await withCancellableProgress(`Checking ${host.memberName}`, async (_r, signal) => {
        place = await placementOf(ctx, cluster, [host], undefined, signal);
        return diagnosePeerUrl(cluster, host.name, {
          ssh,
          signal,
          ...(place.here ? { here: place.here } : {}),
          ...(given.trim() ? { newAddress: given.trim() } : {}),
        });
      });
      await confirmAndFix(ctx, cluster, host, d, ssh, place);
    } finally {
      place?.close();
    }
  };
}

async function confirmAndFix(
  ctx: ExtensionCtx,
  cluster: Cluster,
  host: Host,
  d: PeerUrlDiagnosis,
  ssh: SshContext,
  place: TaskPlacement | undefined,
): Promise<void> {
  ctx.log.info(`fix peer URL ${host.memberName}: ${JSON.stringify(d)}`);
  for (const l of place?.lines ?? []) ctx.log.info(`fix peer URL ${host.memberName}: ${l}`);
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
      ...(place?.here ? { here: place.here } : {}),
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
}
