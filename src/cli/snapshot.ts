/** `k3s-etcd snapshot save|list`: snapshots of the external etcd. */
import { dirname } from 'node:path';
import { renderColumns } from '../core/format/table';
import { listSnapshots, saveSnapshot } from '../core/snapshot/snapshot';
import { humanBytes } from '../shared/etcdTypes';
import { json, loadValid, selectCluster, type Subcommand } from './context';
import { progressLine } from './progressLine';
import { cancelOnSigint } from './remote';

const saveCommand: Subcommand = {
  name: 'snapshot save',
  summary: 'Stream a snapshot of the external etcd into backups/<cluster>/<UTC time>.db',
  usage: 'k3s-etcd snapshot save',
  details: `Streams a snapshot from the first member that answers (mutual TLS) into the workspace,
file 0600, with a JSON record beside it: SHA-256, bytes, revision and the member it came from.`,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const line = progressLine(ctx.global.json);
    // Ctrl+C stops the stream and removes the partial file (a second one quits at once).
    const cancel = cancelOnSigint(ctx);
    const info = await saveSnapshot(cluster, {
      workspaceDir: dirname(ctx.global.inventory),
      signal: cancel.signal,
      onProgress: (bytes) => line.update(`snapshot of ${cluster.name}: ${humanBytes(bytes)}`),
    }).finally(() => {
      line.done();
      cancel.dispose();
    });
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

export const SNAPSHOT_COMMANDS: Subcommand[] = [saveCommand, listCommand];
