/** `k3s-etcd status --settings`: what etcd runs with on each host, beside the inventory. */
import { hostSettingsText, readHostSettings, settingsAgree } from '../core/etcd/runningSettings';
import { json, loadValid, selectCluster, UsageError, type RunContext } from './context';
import { sshContext } from './remote';

/** `status --settings`: what etcd runs with on each host beside the inventory. */
export async function statusSettings(ctx: RunContext): Promise<number> {
  for (const f of ['endpoints', 'cacert', 'cert', 'key'])
    if (ctx.values[f] !== undefined)
      throw new UsageError(
        `--settings reads the inventory's hosts over SSH: it takes --cluster, not --${f}`,
      );
  const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
  const s = await readHostSettings(cluster, { ssh: await sshContext(ctx) });
  if (ctx.global.json) json(ctx, { cluster: cluster.name, agree: settingsAgree(s), ...s });
  else ctx.io.out(hostSettingsText(s));
  return settingsAgree(s) ? 0 : 1;
}
