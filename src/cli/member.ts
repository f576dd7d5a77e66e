/**
 * `k3s-etcd member add|remove|replace`: grow or shrink the running etcd cluster, or replace a
 * failed member in one step, over SSH.
 */
import { peerUrl, selectHosts } from '../core/inventory/select';
import { addMember, removeMember } from '../core/provision/members';
import { checkReplacement, planReplace, replaceMember } from '../core/recover/replace';
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
(<dataDir>.removed-<time>) unless --purge-data deletes it (asked separately, naming the path;
only a folder whose .k3s-etcd-cluster marker names this cluster is deleted).

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

const memberReplaceCommand: Subcommand = {
  name: 'member replace',
  summary:
    'Replace a failed member in one step: remove it, then a learner on the same or another host',
  usage:
    'k3s-etcd member replace MEMBER [--host NEW_HOST] [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `The replacement host is checked first (a dry run of its provisioning); then MEMBER leaves the
member list (refused when that would cost the quorum), etcd is stopped on its host and its data
dir moved aside (<dataDir>.removed-<time>) if the host answers, and the replacement joins as a
learner with a fresh data dir, promoted to a voter once it has caught up. Same host by default
(after a disk loss); --host NEW_HOST (a host of the inventory without the etcd role) gets the
member certificates and the etcd role in k3s-etcd.yaml (MEMBER's host loses it, and its entry
goes when no role is left), and K3s servers whose datastore-endpoint names MEMBER are re-pointed
one at a time. Without a quorum it is refused: use \`k3s-etcd recover\`. Shows the steps and asks
(--yes to skip); --dry-run shows them and the replacement host's check, changing nothing. Exit 1
when refused or not healthy after.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, host: { type: 'string' } },
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member replace needs the MEMBER (host or member name)');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const newHost = typeof ctx.values['host'] === 'string' ? ctx.values['host'] : undefined;
    const plan = await planReplace(cluster, name, newHost ? { newHost } : {});
    const dryRun = ctx.values['dry-run'] === true;
    const show = dryRun ? ctx.io.out : ctx.io.err;
    if (!ctx.global.json) {
      show(
        `Replace ${plan.old.member}${plan.old.id ? ` (${plan.old.id})` : ''} of ${cluster.name} on ${plan.target.sameHost ? `its own host ${plan.target.host}` : plan.target.host}:`,
      );
      plan.lines.forEach((l, i) => show(`  ${i + 1}. ${l}`));
    }
    if (dryRun) {
      // The replacement host's check, as the run does it first (refused: exit 1 with why).
      const check = await checkReplacement(cluster, plan, {
        ssh: await sshContext(ctx),
        onLine: printer(ctx),
      });
      if (ctx.global.json) json(ctx, { plan, check });
      else {
        ctx.io.out(`${plan.target.host} can be provisioned (a dry run of its provisioning):`);
        ctx.io.out(stepTable(check));
      }
      return 0;
    }
    if (!(await confirm(ctx, `Replace ${plan.old.member} now?`))) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const r = await replaceMember(cluster, plan, {
      ssh: await sshContext(ctx),
      inventoryFile: ctx.global.inventory,
      onLine: printer(ctx),
    });
    if (ctx.global.json) json(ctx, r);
    else
      ctx.io.out(
        `${plan.target.member} joined as ${r.memberId}${r.promoted ? ', promoted to a voter' : ''}; ${r.healthSummary ?? (r.healthy ? 'healthy' : 'not healthy')}`,
      );
    return r.healthy ? 0 : 1;
  },
};

export const MEMBER_COMMANDS: Subcommand[] = [
  memberAddCommand,
  memberRemoveCommand,
  memberReplaceCommand,
];
