/** `k3s-etcd snapshot save|list|restore-commands`: snapshots of the external etcd. */
import { dirname, resolve } from 'node:path';
import { renderColumns } from '../core/format/table';
import { listSnapshots, restoreCommands, saveSnapshot } from '../core/etcd/snapshot';
import { json, loadValid, selectCluster, UsageError, type Subcommand } from './context';

const saveCommand: Subcommand = {
  name: 'snapshot save',
  summary: 'Stream a snapshot of the external etcd into backups/<cluster>/<UTC time>.db',
  usage: 'k3s-etcd snapshot save',
  details: `Streams a snapshot from the first member that answers (mutual TLS) into the workspace,
file 0600, with a JSON record beside it: SHA-256, bytes, revision and the member it came from.`,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const info = await saveSnapshot(cluster, { workspaceDir: dirname(ctx.global.inventory) });
    if (ctx.global.json) json(ctx, info);
    else
      ctx.io.out(
        `${info.file}: ${info.bytes} bytes, revision ${info.revision}, sha256 ${info.sha256} (from ${info.from})`,
      );
    return 0;
  },
};

const listCommand: Subcommand = {
  name: 'snapshot list',
  summary: "List the cluster's snapshots in the workspace, newest first",
  usage: 'k3s-etcd snapshot list',
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const list = await listSnapshots(dirname(ctx.global.inventory), cluster.name);
    if (ctx.global.json) json(ctx, list);
    else if (list.length === 0)
      ctx.io.out(`No snapshot of ${cluster.name} yet: k3s-etcd snapshot save`);
    else
      ctx.io.out(
        renderColumns(
          ['CREATED', 'REVISION', 'BYTES', 'FILE'],
          list.map((s) => [s.createdAt, s.revision, String(s.bytes), s.file]),
        ),
      );
    return 0;
  },
};

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

export const SNAPSHOT_COMMANDS: Subcommand[] = [saveCommand, listCommand, restoreCommandsCommand];
