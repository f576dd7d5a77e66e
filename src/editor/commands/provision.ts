/**
 * Provisioning commands: run the task (cluster or host), preview the plan rendered and read-only
 * (a dry run that only reads the hosts), each host's script one click away, and where each host's
 * steps run (this window's host in the task's terminal, the others over SSH).
 */
import { provisionEtcd } from '../../core/provision/provision';
import { selectHosts } from '../../core/inventory/select';
import { stepProgressText } from '../../core/plan/words';
import { rollingPlanLines } from '../../core/rolling/restarts';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { showRunPreview, type PlanDocuments } from '../planDocuments';
import { hostOf, resolveCluster } from '../pick';
import { withCancellableProgress } from '../progress';
import { runProvisionTask } from '../tasks/provider';
import { editorSshContext } from '../sshPrompts';
import { placementOf } from '../tasks/here';

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
    const place = await placementOf(ctx, cluster, hosts);
    const result = await Promise.resolve(
      withCancellableProgress(
        `Reading ${hosts.length} host(s) of ${cluster.name}`,
        (report, signal) =>
          provisionEtcd(cluster, {
            dryRun: true,
            ssh,
            hosts: hosts.map((h) => h.name),
            signal,
            ...(place.here ? { here: place.here } : {}),
            onStep: (h, s) => {
              if (s.status === 'pending') report(stepProgressText(h, s));
            },
          }),
      ),
    ).finally(() => place.close());
    await showRunPreview(
      docs,
      `${cluster.name}${host ? `-${host.name}` : ''}-etcd-plan`,
      `Provisioning plan: etcd for cluster ${cluster.name}`,
      result.runs,
      undefined,
      [
        { heading: 'Where the steps run', lines: place.lines },
        ...(result.rolling
          ? [{ heading: 'Restarts', lines: rollingPlanLines(result.rolling) }]
          : []),
      ],
    );
  };
}
