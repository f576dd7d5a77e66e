/** The maintain-timer task: the maintenance timer put on (or taken off) the member hosts. */
import { selectHosts } from '../../core/inventory/select';
import type { Cluster } from '../../core/inventory/types';
import {
  DEFAULT_ON_CALENDAR,
  HOST_REPORTS_DIR,
  installMaintainTimer,
} from '../../core/maintain/timer';
import type { SshContext } from '../../core/ssh/hostSession';
import { Config } from '../config';
import type { ExtensionCtx } from '../ctx';
import type { K3sEtcdTaskDefinition, TaskOperation } from './definition';

export function timerOperation(
  ctx: ExtensionCtx,
  cluster: Cluster,
  def: K3sEtcdTaskDefinition,
  ssh: SshContext,
  only: string[] | undefined,
): TaskOperation {
  const hosts = selectHosts(cluster, only).map((h) => h.name);
  const remove = def.remove === true;
  const onCalendar = def.onCalendar ?? DEFAULT_ON_CALENDAR;
  const rule = Config.maintainRule((m) => ctx.log.warn(m));
  return {
    what: remove
      ? `remove the maintenance timer from ${hosts.join(', ')} (cluster ${cluster.name})`
      : `the maintenance timer on ${hosts.join(', ')} (cluster ${cluster.name}, ${onCalendar})`,
    apply: remove ? 'Remove' : 'Apply',
    detail: (n, on) =>
      remove
        ? `${n} step(s) on ${on.join(', ')}: the timer is stopped and its files removed; the reports in ${HOST_REPORTS_DIR} stay.`
        : `${n} step(s) would change on ${on.join(', ')}. At ${onCalendar} (host time) each host's timer runs; only the host whose member leads acts: compaction when needed, then defragmentation one member at a time (the k3sEtcd.maintain.* settings), NOSPACE disarmed with headroom. Nothing here restarts etcd.`,
    run: async (dryRun, hooks) => {
      const runs = await installMaintainTimer(cluster, {
        ...hooks,
        dryRun,
        ssh,
        hosts,
        rule,
        remove,
        onCalendar,
      });
      return {
        runs,
        ok: runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled'),
        lines:
          dryRun || remove
            ? []
            : [
                `Each run leaves a JSON report in ${HOST_REPORTS_DIR} on its host; the last one shows in the cluster's tooltip.`,
              ],
      };
    },
  };
}
