/** The restore-etcd task: a snapshot restored onto every member, and its confirmation's words. */
import { localStamp } from '../../core/format/stamp';
import { dirname, resolve } from 'node:path';
import { planRestore, type RestorePlan } from '../../core/restore/plan';
import { restoreSnapshot } from '../../core/restore/run';
import type { Cluster } from '../../core/inventory/types';
import type { ExtensionCtx } from '../ctx';
import { editorSshContext } from '../sshPrompts';
import type { ConfirmedRestore, K3sEtcdTaskDefinition, TaskOperation } from './definition';

/** The modal's detail for a restore: what stops, what is lost, where the old data stays. */
export function restoreConfirmDetail(plan: RestorePlan): string {
  const hosts = plan.members.map((m) => m.host).join(', ');
  return [
    `Every member (${hosts}) is stopped first, the snapshot is restored on each with a new cluster token, then etcd starts again on all of them. Writes made after revision ${plan.snapshot.revision} are lost.`,
    `The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host (never deleted).`,
    ...(plan.k3sServers.length > 0
      ? [
          `K3s servers ${plan.k3sServers.join(', ')} lose their datastore meanwhile: restart them afterwards.`,
        ]
      : []),
    `Snapshot: ${plan.file} (SHA-256 checked against its record).`,
  ].join('\n\n');
}

function snapshotPath(ctx: ExtensionCtx, def: K3sEtcdTaskDefinition): string {
  if (!def.snapshot)
    throw new Error(
      'The restore-etcd task needs "snapshot": the .db file under backups/<cluster>/ (see "Show Snapshots").',
    );
  return resolve(dirname(ctx.inventory.file() ?? '.'), def.snapshot);
}

/**
 * The restore-etcd task: with `confirmed` (given by the task the modal started, for this cluster
 * and snapshot) it runs that plan at once; otherwise it plans, shows the dry run and asks.
 */
export async function restoreOperation(
  ctx: ExtensionCtx,
  cluster: Cluster,
  def: K3sEtcdTaskDefinition,
  given?: ConfirmedRestore,
): Promise<TaskOperation> {
  const file = snapshotPath(ctx, def);
  const confirmed = given?.cluster === cluster.name && given.file === file ? given : undefined;
  const plan = confirmed ?? (await planRestore(cluster, file));
  const ssh = await editorSshContext(ctx);
  return {
    what: `the restore of etcd cluster ${cluster.name} from the snapshot of ${localStamp(plan.snapshot.createdAt)} (revision ${plan.snapshot.revision})`,
    apply: 'Restore',
    detail: () => restoreConfirmDetail(plan),
    confirmed: confirmed !== undefined,
    run: async (dryRun, hooks) => {
      const r = await restoreSnapshot(cluster, file, {
        ...hooks,
        ssh,
        plan,
        dryRun,
        onPhase: (_p, n, title) => hooks.onLine?.(cluster.name, `== phase ${n}/4: ${title}`),
      });
      return {
        runs: r.phases.flatMap((p) =>
          p.runs.map((x) => ({ ...x, host: `${x.host} (${p.phase})` })),
        ),
        ok: dryRun
          ? r.phases.every((p) =>
              p.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled'),
            )
          : r.healthy === true,
        lines: dryRun
          ? []
          : [
              ...r.kept.map((k) => `${k.host}: old data kept at ${k.path}`),
              `health: ${r.healthSummary ?? ''}`,
              `restored: revision now served ${r.revision ?? 'unknown'}, the snapshot's ${plan.snapshot.revision}`,
              ...(plan.k3sServers.length > 0
                ? [
                    `next: restart K3s on ${plan.k3sServers.join(', ')} (one server at a time) so it reads the restored state`,
                  ]
                : []),
            ],
      };
    },
  };
}
