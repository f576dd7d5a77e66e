/**
 * The backup-install task (the CLI's `backup install [--remove]`): the backup timer put on (or
 * taken off) the backup hosts and the receiver on the destination hosts; the hosts' dry run, the
 * modal, then the apply. Ending well, the Backups node reads the hosts again.
 */
import { errorMessage } from '../../core/errors';
import { backupHosts, backupSettings, installBackup } from '../../core/backup/install';
import type { Cluster } from '../../core/inventory/types';
import type { SshContext } from '../../core/ssh/hostSession';
import type { ExtensionCtx } from '../ctx';
import type { K3sEtcdTaskDefinition, TaskOperation } from './definition';

export function backupInstallOperation(
  ctx: ExtensionCtx,
  cluster: Cluster,
  def: K3sEtcdTaskDefinition,
  ssh: SshContext,
): TaskOperation {
  const b = backupSettings(cluster);
  const hosts = backupHosts(cluster).map((h) => h.name);
  const remove = def.remove === true;
  const dests = b.destinations.map((d) =>
    d.kind === 'host' ? `${d.host}:${d.path}` : `s3 ${d.endpoint}/${d.bucket}/${d.prefix}`,
  );
  return {
    what: remove
      ? `remove the backup timer from ${hosts.join(', ')} (cluster ${cluster.name})`
      : `the backup timer on ${hosts.join(', ')} (cluster ${cluster.name}, every ${b.interval})`,
    apply: remove ? 'Remove' : 'Apply',
    detail: (n, on) =>
      remove
        ? `${n} step(s) on ${on.join(', ')}: the timer is stopped and its files removed (recipients' keys and the copies' SSH key pair too), the receivers' keys taken away (and a receiver no key runs); the backups already made stay in ${b.localDir} and at the destinations.`
        : `${n} step(s) would change on ${on.join(', ')}. Every ${b.interval} one backup host (the leader's, or the first listed that answers when the leader is not a backup host) saves a snapshot, encrypts it to the public keys of ${b.recipientsFile} (the private key never leaves you), keeps ${b.keep.hourly} hourly, ${b.keep.daily} daily and ${b.keep.weekly} weekly in ${b.localDir}${dests.length ? `, and copies it to ${dests.join(', ')}` : ''}. Nothing here restarts etcd.`,
    run: async (dryRun, hooks) => {
      const runs = await installBackup(cluster, { ...hooks, dryRun, ssh, remove });
      const ok = runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled');
      if (!dryRun && ok && !remove)
        void ctx.backups.read(cluster, ssh).catch((err: unknown) => {
          ctx.log.warn(`backups of ${cluster.name} not read: ${errorMessage(err)}`);
        });
      return {
        runs,
        ok,
        lines:
          dryRun || remove
            ? []
            : [
                `Backups go to ${b.localDir} on the backup host that takes them every ${b.interval}: "Run Backup Now" takes one now, "Show Backup Status" lists them.`,
              ],
      };
    },
  };
}
