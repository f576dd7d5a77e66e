/** `k3s-etcd certs renew`: re-issue leaves under the same CA and roll them out without an outage. */
import { planRenew, runRenew } from '../core/renew/run';
import { RESTART_WHY, renewOutcomeLines, renewPlanJson, renewPlanLines } from '../core/renew/words';
import { PASSPHRASE_OPTION, pkiOptions } from './certs';
import { loadValid, selectCluster, type Subcommand } from './context';
import { runRollout, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const renewCommand: Subcommand = {
  name: 'certs renew',
  summary:
    "Re-issue the members' certificates (and K3s's datastore client) under the same CA and roll them out, one host at a time",
  usage:
    'k3s-etcd certs renew [--member NAME]... [--k3s] [--dry-run] [--yes] [--json] [--ca-passphrase-file F] [--accept-new-host-keys]',
  details: `Re-issues under the cluster's CA every member's server and peer certificate (or only
those of --member NAME, repeatable), with --k3s the K3s datastore client certificate too, with
the SANs the inventory gives now and leafValidityDays; then rolls them out. The previous files
are kept in <pki>/previous-<UTC time>/ until the rollout finished; any that did not reach their
hosts are put back, so the workspace always holds what the hosts run.
Members go through the rolling engine: one at a time, followers first, the leader last after
handing its leadership over, every other voter healthy before each, the member healthy and
caught up after; the first that fails gets its old files back and the rest are left alone.
${RESTART_WHY}.
Then the K3s servers one at a time: the files, K3s restarted, the node Ready (the first that
fails gets its old files back). Refused, before anything is written, when the CA expires
before the new certificates would (rotate the CA instead) or when the cluster is not healthy
enough for a rolling change. Shows the certificates (CN, new expiry) and the order with who
restarts and why, and asks (--yes to skip); --dry-run only shows it. Exit 1 when a host fails.

${SSH_HELP}`,
  options: {
    ...SSH_OPTIONS,
    ...PASSPHRASE_OPTION,
    member: { type: 'string', multiple: true },
    k3s: { type: 'boolean', default: false },
  },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const members = (ctx.values['member'] as unknown as string[] | undefined) ?? [];
    const common = {
      members,
      k3s: ctx.values['k3s'] === true,
      ssh: await sshContext(ctx),
      pki: pkiOptions(ctx),
    };
    const plan = await planRenew(cluster, common);
    return runRollout(
      ctx,
      plan,
      {
        lines: renewPlanLines(plan),
        json: renewPlanJson(plan),
        question: `Renew ${plan.leaves.length} certificate(s) of ${cluster.name} and roll them out to ${plan.members.length} member(s)${plan.k3sServers.length > 0 ? ` and ${plan.k3sServers.length} K3s server(s)` : ''}?`,
      },
      (hooks) => runRenew(cluster, plan, { ...common, ...hooks }),
      renewOutcomeLines,
    );
  },
};

export const RENEW_COMMANDS: Subcommand[] = [renewCommand];
