/**
 * What each task operation runs: provision-etcd, install-k3s (and restore-etcd, maintain-timer
 * and backup-install in their own files).
 */
import { dirname } from 'node:path';
import { provisionEtcd } from '../../core/provision/provision';
import { rollingPlanLines, type RollingPlan } from '../../core/rolling/restarts';
import { selectHosts, selectK3sServers } from '../../core/inventory/select';
import { installK3s } from '../../core/k3s/ops';
import type { ExtensionCtx } from '../ctx';
import { clusterNamed } from '../pick';
import { editorSshContext } from '../sshPrompts';
import { secretTokenStore } from '../tokenStore';
import type { ConfirmedRestore, K3sEtcdTaskDefinition, TaskOperation } from './definition';
import { restoreOperation } from './restore';
import { timerOperation } from './maintainTimer';
import { backupInstallOperation } from './backupInstall';
import { placementOf } from './here';
import type { TerminalIo } from '../../core/thisHost/terminal';

/** What the task of `def` runs; `confirmed` only for the restore its modal started. */
export async function operationFor(
  ctx: ExtensionCtx,
  def: K3sEtcdTaskDefinition,
  confirmed?: ConfirmedRestore,
  io?: TerminalIo,
): Promise<TaskOperation> {
  ctx.trust.require('Running a K3s etcd task');
  const cluster = clusterNamed(ctx, def.cluster);
  if (def.operation === 'restore-etcd') return restoreOperation(ctx, cluster, def, confirmed);
  const ssh = await editorSshContext(ctx);
  const only = def.host ? [def.host] : undefined;
  if (def.operation === 'maintain-timer') return timerOperation(ctx, cluster, def, ssh, only);
  if (def.operation === 'backup-install') return backupInstallOperation(ctx, cluster, def, ssh);
  if (def.operation === 'install-k3s') {
    const servers = selectK3sServers(cluster, only);
    const hosts = servers.map((h) => h.name);
    const place = await placementOf(ctx, cluster, servers, io);
    const file = (ctx.inventory.current() as { file: string }).file;
    const base = {
      ssh,
      hosts,
      tokens: secretTokenStore(ctx, file),
      workspaceDir: dirname(file),
      ...(place.here ? { here: place.here } : {}),
    };
    return {
      what: `K3s on ${hosts.join(', ')} (cluster ${cluster.name}, external etcd)`,
      apply: 'Apply',
      placement: place.lines,
      dispose: place.close,
      detail: (n, on) =>
        `${n} step(s) would change on ${on.join(', ')}, one server at a time. config.yaml (0600) is backed up before being replaced; K3s restarts where its config changed.`,
      run: async (dryRun, hooks) => {
        const r = await installK3s(cluster, { ...base, ...hooks, dryRun });
        if (!dryRun) void ctx.k3s.refresh(cluster, ssh);
        return {
          runs: r.runs,
          ok: r.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled'),
          lines: r.kubeconfig ? [`kubeconfig: ${r.kubeconfig}`] : [],
        };
      },
    };
  }
  const members = selectHosts(cluster, only);
  const hosts = members.map((h) => h.name);
  const place = await placementOf(ctx, cluster, members, io);
  const here = place.here ? { here: place.here } : {};
  let rolling: RollingPlan | undefined;
  return {
    what: `etcd on ${hosts.join(', ')} (cluster ${cluster.name})`,
    apply: 'Apply',
    placement: place.lines,
    dispose: place.close,
    detail: (n, on) =>
      [
        `${n} step(s) would change on ${on.join(', ')}. Existing units and configuration are backed up before being replaced; data directories are never deleted. Use "Preview Provisioning Plan" to read every step.`,
        ...(rolling ? rollingPlanLines(rolling) : []),
      ].join('\n'),
    run: async (dryRun, hooks) => {
      const r = await provisionEtcd(cluster, { ...hooks, dryRun, ssh, hosts, ...here });
      if (dryRun) rolling = r.rolling;
      return {
        runs: r.runs,
        ok:
          r.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled') &&
          r.healthy !== false,
        lines: [
          ...(dryRun && r.rolling ? rollingPlanLines(r.rolling) : []),
          ...(r.healthSummary ? [`health: ${r.healthSummary}`] : []),
        ],
      };
    },
  };
}
