/** `k3s-etcd snapshot restore-commands|restore`: a snapshot back onto every etcd member. */
import { dirname, resolve } from 'node:path';
import { renderColumns } from '../core/format/table';
import { planRestore, restorePlanText } from '../core/restore/plan';
import { restoreSnapshot, type RestoreResult } from '../core/restore/run';
import { listSnapshots } from '../core/snapshot/snapshot';
import { restoreCommands } from '../core/etcd/snapshotFile';
import { summarizeRun } from '../core/plan/runner';
import { confirm, json, loadValid, selectCluster, UsageError, type Subcommand } from './context';
import { printer, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const restoreCommandsCommand: Subcommand = {
  name: 'snapshot restore-commands',
  summary: 'Print the per-member commands that restore a snapshot (nothing is run)',
  usage: 'k3s-etcd snapshot restore-commands [--file SNAPSHOT]',
  details: `Generated from the inventory: on each member host, with etcd stopped, restore the same
snapshot into a new data dir with that member's name and peer URL (etcdctl for etcd 3.4,
etcdutl from 3.5), then put the new data dir in place of the old one and start etcd on every
member. The newest snapshot unless --file.`,
  options: { file: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const given = ctx.values['file'];
    const file =
      typeof given === 'string'
        ? resolve(ctx.io.cwd, given)
        : (await listSnapshots(dirname(ctx.global.inventory), cluster.name))[0]?.file;
    if (!file)
      throw new UsageError(`no snapshot of ${cluster.name}: run k3s-etcd snapshot save first`);
    const cmds = restoreCommands(cluster, file);
    if (ctx.global.json) json(ctx, cmds);
    else
      for (const c of cmds) {
        ctx.io.out(
          `# on ${c.host} (member ${c.member}), with etcd stopped, after copying the snapshot there:`,
        );
        ctx.io.out(c.command);
      }
    return 0;
  },
};

/** Every host's steps of every phase: HOST PHASE STEP STATUS WHAT. */
function phaseTable(result: RestoreResult): string {
  return renderColumns(
    ['HOST', 'PHASE', 'STEP', 'STATUS', 'WHAT'],
    result.phases.flatMap((p) =>
      p.runs.flatMap((r) =>
        r.steps.length > 0
          ? r.steps.map((s) => [r.host, p.phase, `${s.n}`, s.status, s.title])
          : [[r.host, p.phase, '-', r.status, r.error?.message ?? '']],
      ),
    ),
  );
}

const restoreCommand: Subcommand = {
  name: 'snapshot restore',
  summary: 'Restore a snapshot onto every etcd member over SSH (stops the whole cluster)',
  usage: 'k3s-etcd snapshot restore --file SNAPSHOT [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `Restores a snapshot saved by \`k3s-etcd snapshot save\` onto every etcd host of the cluster:
checks the file's SHA-256 and size against its .json record first (a mismatch is refused before
any host is touched), reaches and reads every host, uploads the snapshot to
/var/lib/k3s-etcd/restore (0600), stops etcd on EVERY member, restores on each into
<dataDir>.restored with its name, peer URL and a new cluster token (etcdutl from etcd 3.5,
etcdctl for 3.4), moves the old data dir aside to <dataDir>.before-restore-<UTC time> (kept,
never deleted), puts the restored one in place, sets ETCD_INITIAL_CLUSTER_TOKEN and
ETCD_INITIAL_CLUSTER_STATE=existing in /etc/etcd/etcd.env, starts etcd everywhere and waits
until every member is healthy; then prints the revision served. If the restore fails before a
data dir was replaced, etcd is started again on its old data. Shows the plan and every host's
steps (a dry run) and asks first; --yes skips the question, --dry-run only shows. Writes made
after the snapshot are lost: restart K3s servers on this etcd afterwards. Exit 1 on failure.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, file: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const given = ctx.values['file'];
    if (typeof given !== 'string')
      throw new UsageError(
        'snapshot restore needs --file SNAPSHOT (k3s-etcd snapshot list shows them)',
      );
    const file = resolve(ctx.io.cwd, given);
    const dryRun = ctx.values['dry-run'] === true;
    const plan = await planRestore(cluster, file);
    const ssh = await sshContext(ctx);
    if (!ctx.global.json) for (const l of restorePlanText(plan)) ctx.io.out(l);
    if (dryRun || !ctx.global.yes) {
      const preview = await restoreSnapshot(cluster, file, { ssh, plan, dryRun: true });
      const blocked = preview.phases.some((p) =>
        p.runs.some((r) => r.status === 'failed' || r.status === 'cancelled'),
      );
      if (ctx.global.json && dryRun) json(ctx, preview);
      else if (!ctx.global.json) {
        ctx.io.out('');
        ctx.io.out(phaseTable(preview));
        for (const r of preview.phases.flatMap((p) => p.runs).filter((x) => x.error))
          ctx.io.out(summarizeRun(r));
      }
      if (!ctx.global.json)
        ctx.io.out(
          'A dry run: every host was only read, each phase checked against the hosts as they are now (later phases run after earlier ones changed them).',
        );
      if (dryRun || blocked) {
        if (blocked) ctx.io.err('A host is not ready for the restore: nothing was changed.');
        return blocked ? 1 : 0;
      }
      const kept = plan.members[0]?.keptAs ?? '';
      if (
        !(await confirm(
          ctx,
          `Restore etcd cluster ${cluster.name} from the snapshot of ${plan.snapshot.createdAt} (revision ${plan.snapshot.revision})? Every member (${plan.members.map((m) => m.host).join(', ')}) is stopped; the old data dirs are kept at ${kept}.`,
        ))
      ) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
    }
    const result = await restoreSnapshot(cluster, file, {
      ssh,
      plan,
      dryRun: false,
      onLine: printer(ctx),
      onPhase: (_phase, n, title) => {
        if (!ctx.global.json) ctx.io.out(`== phase ${n}/4: ${title}`);
      },
    });
    if (ctx.global.json) json(ctx, result);
    else {
      ctx.io.out('');
      for (const k of result.kept) ctx.io.out(`${k.host}: old data kept at ${k.path}`);
      ctx.io.out(`health: ${result.healthSummary ?? ''}`);
      ctx.io.out(
        `restored: revision now served ${result.revision ?? 'unknown'}, the snapshot's ${plan.snapshot.revision}`,
      );
      if (plan.k3sServers.length > 0)
        ctx.io.out(
          `next: restart K3s on ${plan.k3sServers.join(', ')} (one server at a time) so it reads the restored state`,
        );
    }
    return result.healthy ? 0 : 1;
  },
};

export const RESTORE_COMMANDS: Subcommand[] = [restoreCommandsCommand, restoreCommand];
