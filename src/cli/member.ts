/** `k3s-etcd member add|remove`: grow or shrink the running etcd cluster, over SSH. */
import { peerUrl, selectHosts } from '../core/inventory/select';
import { addMember, removeMember } from '../core/provision/members';
import { confirm, json, loadValid, selectCluster, UsageError, type Subcommand } from './context';
import { printer, report, SSH_HELP, SSH_OPTIONS, sshContext, stepTable } from './remote';

const memberAddCommand: Subcommand = {
  name: 'member add',
  summary: 'Add a host of the inventory to the running etcd cluster, then provision it',
  usage: 'k3s-etcd member add HOST [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `HOST must be in k3s-etcd.yaml with the etcd role and have its certificates (k3s-etcd certs
generate). Runs \`member add\` through a healthy member first, then provisions the host with
--initial-cluster-state existing.

${SSH_HELP}`,
  options: SSH_OPTIONS,
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member add needs the HOST to add');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const [host] = selectHosts(cluster, [name]);
    if (!host) throw new UsageError(`no host ${name}`);
    const dryRun = ctx.values['dry-run'] === true;
    if (
      !dryRun &&
      !(await confirm(
        ctx,
        `Add ${host.memberName} (${peerUrl(cluster, host)}) to etcd cluster ${cluster.name}?`,
      ))
    ) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const result = await addMember(cluster, host.name, {
      dryRun,
      ssh: await sshContext(ctx),
      onLine: printer(ctx),
    });
    if (dryRun && !ctx.global.json) ctx.io.out(stepTable(result.runs));
    const code = report(ctx, result.runs, { memberId: result.memberId, healthy: result.healthy });
    return code === 0 && result.healthy !== false ? 0 : 1;
  },
};

const memberRemoveCommand: Subcommand = {
  name: 'member remove',
  summary: 'Remove a member from the etcd cluster, then stop and disable its unit',
  usage: 'k3s-etcd member remove MEMBER [--purge-data] [--dry-run] [--yes]',
  details: `Refuses when removing the member would lose quorum. The member's data dir is moved aside
(<dataDir>.removed-<time>) unless --purge-data deletes it (asked separately, naming the path).

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, 'purge-data': { type: 'boolean', default: false } },
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member remove needs the MEMBER (host or member name)');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const dryRun = ctx.values['dry-run'] === true;
    const purge = ctx.values['purge-data'] === true;
    if (!dryRun) {
      if (
        !(await confirm(
          ctx,
          `Remove member ${name} from etcd cluster ${cluster.name} and stop etcd on it?`,
        ))
      ) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
      if (purge && !(await confirm(ctx, `Delete ${cluster.etcd.dataDir} on ${name} for good?`))) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
    }
    const r = await removeMember(cluster, name, {
      dryRun,
      purgeData: purge,
      ssh: await sshContext(ctx),
      onLine: printer(ctx),
    });
    if (ctx.global.json) json(ctx, r);
    return 0;
  },
};

export const MEMBER_COMMANDS: Subcommand[] = [memberAddCommand, memberRemoveCommand];
