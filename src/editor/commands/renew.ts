/**
 * Renew Certificates… (the CLI's `certs renew`): on the Certificates node every member (and, when
 * the cluster has K3s servers on this etcd, asked whether the K3s datastore client certificate
 * too), on a member row that member only. The plan is read first (new certificates issued in
 * memory, every host dry-run) and shown in a modal naming each certificate, its new expiry and
 * the rolling order with who restarts and why; then the rollout runs with progress and cancel.
 * Afterwards the certificate check runs again, so the tree shows what the hosts hold now.
 * Needs a trusted workspace (it connects and writes keys), like every command not listed as
 * working untrusted.
 */
import * as vscode from 'vscode';
import { CancelledError } from '../../core/errors';
import { k3sServers } from '../../core/inventory/select';
import { planRenew, runRenew, type RenewOptions } from '../../core/renew/run';
import { renewOutcomeLines, renewPlanLines } from '../../core/renew/words';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { rollOutCertificates } from '../rollout';
import { editorSshContext } from '../sshPrompts';
import { editorPkiOptions } from './certs';

export function renewCertificatesCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const member = node?.kind === 'role' && node.member ? node.member.name : undefined;
    let k3s = false;
    if (!member && cluster.datastore === 'external-etcd' && k3sServers(cluster).length > 0) {
      const pick = await vscode.window.showQuickPick(
        [
          {
            label: 'Members and K3s servers',
            description: "every member's server and peer certificates, and K3s's datastore client",
            k3s: true,
          },
          {
            label: 'Members only',
            description: "every member's server and peer certificates",
            k3s: false,
          },
        ],
        { title: `Renew the certificates of ${cluster.name}`, ignoreFocusOut: true },
      );
      if (!pick) throw new CancelledError('Renew Certificates');
      k3s = pick.k3s;
    }
    const ssh = await editorSshContext(ctx);
    const common: RenewOptions = {
      ...(member ? { members: [member] } : {}),
      k3s,
      ssh,
      pki: editorPkiOptions(ctx),
    };
    const plan = await withCancellableProgress(
      `Planning the renewal of ${member ?? cluster.name}'s certificates`,
      (_r, signal) => planRenew(cluster, { ...common, signal }),
    );
    const lines = renewPlanLines(plan);
    ctx.log.info(`certificate renewal plan of ${cluster.name}:\n${lines.join('\n')}`);
    if (plan.refusal) throw new Error(`Not renewed: ${plan.refusal}`);
    const hosts = `${plan.members.length} member(s)${plan.k3sServers.length > 0 ? ` and ${plan.k3sServers.length} K3s server(s)` : ''}`;
    const choice = await vscode.window.showWarningMessage(
      `Renew ${plan.leaves.length} certificate(s) of ${cluster.name} and roll them out to ${hosts}, one at a time?`,
      { modal: true, detail: lines.join('\n') },
      'Renew',
    );
    if (choice !== 'Renew') return;
    const result = await rollOutCertificates(
      ctx,
      cluster,
      ssh,
      `Renewing the certificates of ${cluster.name}`,
      (hooks) => runRenew(cluster, plan, { ...common, ...hooks }),
    );
    const outcome = renewOutcomeLines(result);
    for (const l of outcome) ctx.log.info(l);
    if (!result.ok)
      throw new Error(outcome.filter((l) => !/^Renewed and deployed/.test(l)).join(' '));
    void vscode.window.showInformationMessage(
      `${cluster.name}: ${plan.leaves.length} certificate(s) renewed and rolled out to ${hosts}; the certificate check runs again for the tree.`,
    );
  };
}
