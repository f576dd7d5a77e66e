/**
 * Provisioning commands: run the task (cluster or host), preview the plan in a read-only
 * document (a dry run that only reads the hosts).
 */
import * as vscode from 'vscode';
import { provisionEtcd } from '../../core/provision/provision';
import { selectHosts } from '../../core/inventory/select';
import { rollingPlanLines } from '../../core/rolling/restarts';
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
    const order = result.rolling ? rollingPlanLines(result.rolling) : [];
    const text = previewText(`Provisioning plan: etcd for cluster ${cluster.name}`, result.runs);
    // The restart order goes under the summary, before each host's steps.
    const cut = text.indexOf('\n## ');
    docs.set(
      uri,
      order.length === 0 || cut < 0
        ? text
        : `${text.slice(0, cut)}\n## Restarts\n\n${order.map((l) => (l.startsWith('  ') ? `  - ${l.trim()}` : `- ${l}`)).join('\n')}\n${text.slice(cut)}`,
    );
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: false });
  };
}
