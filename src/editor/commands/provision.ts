/**
 * Provisioning commands: run the task (cluster or host), preview the plan in a read-only
 * document (a dry run that only reads the hosts).
 */
import * as vscode from 'vscode';
import { provisionEtcd } from '../../core/provision/provision';
import { selectHosts } from '../../core/inventory/select';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { PLAN_SCHEME, previewText, type PlanDocuments } from '../planDocuments';
import { hostOf, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { runProvisionTask } from '../tasks/provider';
import { editorSshContext } from '../sshPrompts';

export function provisionEtcdCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    await runProvisionTask(ctx, cluster.name, hostOf(cluster, node)?.name);
  };
}

export function previewPlanCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host = hostOf(cluster, node);
    const hosts = selectHosts(cluster, host ? [host.name] : undefined);
    const ssh = await editorSshContext(ctx);
    const result = await withCancellableProgress(
      `Reading ${hosts.length} host(s) of ${cluster.name}`,
      (report, signal) =>
        provisionEtcd(cluster, {
          dryRun: true,
          ssh,
          hosts: hosts.map((h) => h.name),
          signal,
          onStep: (h, s) => report(`${h}: ${s.title}`),
        }),
    );
    const uri = vscode.Uri.from({
      scheme: PLAN_SCHEME,
      path: `/${cluster.name}${host ? `-${host.name}` : ''}-etcd-plan.md`,
    });
    docs.set(uri, previewText(`Provisioning plan: etcd for cluster ${cluster.name}`, result.runs));
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: false });
  };
}
