/** `k3s-etcd recover`: back from quorum loss from the most advanced member, losing no write. */
import { dirname } from 'node:path';
import { renderColumns } from '../core/format/table';
import { summarizeRun, type HostRun } from '../core/plan/runner';
import { detectCluster } from '../core/recover/detect';
import { planRecover, recoverPlanText, recoverQuestion } from '../core/recover/plan';
import { notRejoinedWords, recoverCluster } from '../core/recover/run';
import { confirm, json, loadValid, selectCluster, type Subcommand } from './context';
import { cancelOnSigint, printer, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

function stepRows(runs: HostRun[]): string {
  return renderColumns(
    ['HOST', 'STEP', 'STATUS', 'WHAT'],
    runs.flatMap((r) =>
      r.steps.length > 0
        ? r.steps.map((s) => [r.host, `${s.n}`, s.status, s.title])
        : [[r.host, '-', r.status, r.error?.message ?? '']],
    ),
  );
}

const recoverCommand: Subcommand = {
  name: 'recover',
  summary: 'Recover etcd from quorum loss from its most advanced member, without losing writes',
  usage: 'k3s-etcd recover [--member NAME] [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `For a cluster that has lost quorum (no leader, no majority). Reads every member first:
what \`endpoint status\` answers (raft index, term, revision: served without quorum) and, over
SSH, the unit's state and since when, the data dir, and a stopped member's database revision.
Refused when the cluster still has quorum (replace a failed member with \`k3s-etcd member
replace\` instead). The survivor is the most advanced member (highest raft index, then term,
then revision); --member NAME chooses it, refused when another member is ahead.
Then, after a dry run of every host's script and a confirmation: a snapshot of the survivor's
data into backups/<cluster>/ (streamed from it alone, with its record), etcd stopped on the
others and their data dirs moved aside to <dataDir>.recover-<UTC time> (kept, never deleted),
the survivor started once with --force-new-cluster (a drop-in under /run, removed as soon as it
answers) and then normally, its env file's ETCD_INITIAL_CLUSTER naming itself; the others
re-added one at a time as learners and promoted once caught up. Unlike a snapshot restore, no
write the survivor holds is lost. The inventory does not change. Restart the K3s servers on
this etcd afterwards (named at the end). Exit 1 when refused or failed; Ctrl+C cancels between
steps.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, member: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const dryRun = ctx.values['dry-run'] === true;
    const member = ctx.values['member'];
    const ssh = await sshContext(ctx);
    const onLine = printer(ctx);
    const detection = await detectCluster(cluster, { ssh });
    const plan = planRecover(cluster, detection, {
      ...(typeof member === 'string' ? { member } : {}),
    });
    if (!ctx.global.json) for (const l of recoverPlanText(plan)) ctx.io.out(l);
    const workspaceDir = dirname(ctx.global.inventory);
    if (dryRun || !ctx.global.yes) {
      const preview = await recoverCluster(cluster, plan, { ssh, workspaceDir, dryRun: true });
      const blocked = preview.runs.some((r) => r.status === 'failed' || r.status === 'cancelled');
      if (ctx.global.json && dryRun) json(ctx, preview);
      else if (!ctx.global.json) {
        ctx.io.out('');
        ctx.io.out(stepRows(preview.runs));
        for (const r of preview.runs.filter((x) => x.error)) ctx.io.out(summarizeRun(r));
        ctx.io.out(
          'A dry run: every host was only read (the re-added members are provisioned after the survivor runs alone, so they are not previewed here).',
        );
      }
      if (dryRun || blocked) {
        if (blocked) ctx.io.err('A host is not ready for the recovery: nothing was changed.');
        return blocked ? 1 : 0;
      }
      if (!(await confirm(ctx, recoverQuestion(plan)))) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
    }
    const cancel = cancelOnSigint(ctx);
    try {
      const result = await recoverCluster(cluster, plan, {
        ssh,
        workspaceDir,
        dryRun: false,
        signal: cancel.signal,
        onLine,
        onPhase: (_p, n, title) => {
          if (!ctx.global.json) ctx.io.out(`== recover ${n}/5: ${title}`);
        },
      });
      if (ctx.global.json) json(ctx, result);
      else {
        ctx.io.out('');
        if (result.snapshot) ctx.io.out(`survivor's snapshot: ${result.snapshot.file}`);
        for (const k of result.kept) ctx.io.out(`${k.host}: old data kept at ${k.path}`);
        for (const r of result.rejoined) ctx.io.out(`${r.host}: rejoined as member ${r.memberId}`);
        for (const l of notRejoinedWords(result)) ctx.io.out(l);
        ctx.io.out(`health: ${result.healthSummary ?? ''}`);
        ctx.io.out(
          `recovered from ${plan.survivor.host}: revision now served ${result.revision ?? 'unknown'} (the survivor had ${plan.survivor.revision}), in ${((result.tookMs ?? 0) / 1000).toFixed(1)} s`,
        );
        if (plan.k3sServers.length > 0)
          ctx.io.out(
            `next: restart K3s on ${plan.k3sServers.join(', ')} (one server at a time) so it reconnects`,
          );
      }
      return result.healthy && result.notRejoined.length === 0 ? 0 : 1;
    } finally {
      cancel.dispose();
    }
  },
};

export const RECOVER_COMMANDS: Subcommand[] = [recoverCommand];
