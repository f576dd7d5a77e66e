/** `k3s-etcd certs renew`: re-issue leaves under the same CA and roll them out without an outage. */
import { planRenew, runRenew } from '../core/renew/run';
import { RESTART_WHY, renewOutcomeLines, renewPlanJson, renewPlanLines } from '../core/renew/words';
import { summarizeRun } from '../core/plan/runner';
import { PASSPHRASE_OPTION, pkiOptions } from './certs';
import { confirm, json, loadValid, selectCluster, type Subcommand } from './context';
import { cancelOnSigint, printer, SSH_HELP, SSH_OPTIONS, sshContext, stepTable } from './remote';

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
    const lines = renewPlanLines(plan);
    const runs = [...plan.memberRuns, ...plan.k3sRuns];
    if (ctx.values['dry-run'] === true || plan.refusal) {
      if (ctx.global.json) json(ctx, { dryRun: true, ...renewPlanJson(plan), hosts: runs });
      else {
        ctx.io.out(stepTable(runs));
        for (const l of lines) ctx.io.out(l);
        if (plan.refusal) for (const r of runs) ctx.io.out(summarizeRun(r));
      }
      return plan.refusal ? 1 : 0;
    }
    if (!ctx.global.json) for (const l of lines) ctx.io.out(l);
    const question = `Renew ${plan.leaves.length} certificate(s) of ${cluster.name} and roll them out to ${plan.members.length} member(s)${plan.k3sServers.length > 0 ? ` and ${plan.k3sServers.length} K3s server(s)` : ''}?`;
    if (!(await confirm(ctx, question))) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const cancel = cancelOnSigint(ctx);
    try {
      const result = await runRenew(cluster, plan, {
        ...common,
        signal: cancel.signal,
        onLine: printer(ctx),
      });
      if (ctx.global.json) json(ctx, result);
      else {
        ctx.io.out('');
        for (const r of [...result.memberRuns, ...result.k3sRuns]) ctx.io.out(summarizeRun(r));
        for (const l of renewOutcomeLines(result)) ctx.io.out(l);
      }
      return result.ok ? 0 : 1;
    } finally {
      cancel.dispose();
    }
  },
};

export const RENEW_COMMANDS: Subcommand[] = [renewCommand];
