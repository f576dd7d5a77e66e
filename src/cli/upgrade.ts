/** `k3s-etcd upgrade --to VERSION`: the etcd of a running cluster, one minor at a time. */
import { dirname } from 'node:path';
import { upgradeEtcd, snapshotFolder } from '../core/upgrade/run';
import { upgradeLines } from '../core/upgrade/plan';
import { summarizeRun } from '../core/plan/runner';
import { confirm, json, loadValid, selectCluster, type Subcommand } from './context';
import { CommandUsageError } from './usage';
import { printer, SSH_HELP, SSH_OPTIONS, sshContext, stepTable } from './remote';

/** How to go back one step, in the words the help and the end of an upgrade give. */
const ROLLBACK_HELP = `Each member keeps its previous etcd and etcdctl as /usr/local/bin/etcd.previous and
/usr/local/bin/etcdctl.previous. Going back one patch (the same minor) on a member, one at a time:
  systemctl stop etcd && mv /usr/local/bin/etcd.previous /usr/local/bin/etcd \\
    && mv /usr/local/bin/etcdctl.previous /usr/local/bin/etcdctl && systemctl start etcd
then set etcd.version in k3s-etcd.yaml back. Across a minor, once the cluster version moved, etcd
refuses the older binary: restore the snapshot taken before (k3s-etcd snapshot restore FILE).`;

const upgradeCommand: Subcommand = {
  name: 'upgrade',
  summary:
    'Upgrade the etcd of a running cluster to a version, member by member, without an outage',
  usage: 'k3s-etcd upgrade --to VERSION [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `Reads the version every member runs (endpoint status) and plans the path to VERSION one
minor at a time, with the patch floors etcd's upgrade guides set (3.4 -> 3.5 -> 3.6 -> 3.7);
a downgrade, a skipped minor, a known-bad target or tuning the target lacks is refused before
anything is touched. Then: a snapshot into backups/<cluster>/ checked against its record,
and per hop the binaries of that version (etcd.install: download per version; upload: a
folder holding etcd-vX.Y.Z-linux-<arch>.tar.gz for every hop, or the binaries for a one-hop
upgrade) with the flags of that version, through the rolling engine: one member at a time,
followers first, the leader last; the cluster version must reach the hop's minor before the
next hop. Afterwards etcd.version in k3s-etcd.yaml is the new version. Shows the plan and asks first (--yes to skip); --dry-run only shows it.

${ROLLBACK_HELP}

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, to: { type: 'string' } },
  async run(ctx) {
    const to = ctx.values['to'];
    if (typeof to !== 'string' || to === '')
      throw new CommandUsageError(
        'upgrade needs --to VERSION (for example --to v3.6.14)',
        'upgrade',
      );
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const ssh = await sshContext(ctx);
    const common = {
      to,
      ssh,
      workspaceDir: dirname(ctx.global.inventory),
      inventoryFile: ctx.global.inventory,
    };
    const preview = await upgradeEtcd(cluster, { ...common, dryRun: true });
    const lines = upgradeLines(preview.plan, {
      snapshotDir: snapshotFolder(cluster),
      rolling: preview.hops.map((h) => h.rolling),
    });
    const runs = preview.hops.flatMap((h) => h.runs);
    const failed = runs.some((r) => r.status === 'failed' || r.status === 'cancelled');
    if (ctx.values['dry-run'] === true || failed || preview.plan.hops.length === 0) {
      if (ctx.global.json) json(ctx, { dryRun: true, plan: preview.plan, hops: preview.hops });
      else {
        for (const l of lines) ctx.io.out(l);
        const first = preview.hops[0];
        if (first) {
          ctx.io.out(`\nSteps of hop 1 (${first.hop.from} → ${first.hop.to}) on each host:`);
          ctx.io.out(stepTable(first.runs));
        }
        if (failed) for (const r of runs) ctx.io.out(summarizeRun(r));
      }
      return failed ? 1 : 0;
    }
    if (!ctx.global.json) for (const l of lines) ctx.io.out(l);
    if (
      !(await confirm(
        ctx,
        `Upgrade etcd of ${cluster.name} to ${preview.plan.to} on ${preview.plan.members.length} member(s)?`,
      ))
    ) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const result = await upgradeEtcd(cluster, { ...common, dryRun: false, onLine: printer(ctx) });
    if (ctx.global.json) {
      json(ctx, result);
      return result.ok ? 0 : 1;
    }
    for (const n of result.notes) ctx.io.out(`note: ${n}`);
    if (!result.ok) {
      ctx.io.err(`k3s-etcd: ${result.message}`);
      return 1;
    }
    ctx.io.out(
      `etcd of ${cluster.name} is ${result.plan.to} (cluster version ${result.hops.at(-1)?.clusterVersion ?? '?'}); etcd.version in the inventory follows; the snapshot taken before: ${result.snapshot?.file}.`,
    );
    ctx.io.out(ROLLBACK_HELP);
    return 0;
  },
};

export const UPGRADE_COMMANDS: Subcommand[] = [upgradeCommand];
