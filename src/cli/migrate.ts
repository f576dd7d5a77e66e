/** `k3s-etcd migrate sqlite-to-etcd`: K3s's SQLite state into the cluster's external etcd. */
import { dirname, resolve } from 'node:path';
import { migrateToEtcd, migrationReport, readSource, saveReport } from '../core/migrate/migrate';
import { progressText, type MigrationProgress } from '../core/migrate/progress';
import {
  confirm,
  json,
  loadValid,
  selectCluster,
  tokenFromOptions,
  UsageError,
  type Subcommand,
} from './context';

import { progressLine } from './progressLine';

/** `--max-request-bytes`: the target etcd's own limit, in bytes. */
function requestLimit(v: string | boolean | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 64 * 1024 || n > 2 ** 31)
    throw new UsageError(
      `--max-request-bytes takes the target etcd's --max-request-bytes in bytes (65536 to 2147483648; etcd's default is 1572864), not ${JSON.stringify(v)}`,
    );
  return n;
}

const migrateCommand: Subcommand = {
  name: 'migrate sqlite-to-etcd',
  summary: "Copy K3s's SQLite state (kine) into the cluster's external etcd, verified",
  usage:
    'k3s-etcd migrate sqlite-to-etcd --source PATH/state.db [--token-file PATH | --token-file - | --token TOKEN] [--max-request-bytes N] [--dry-run] [--force] [--yes]',
  details: `Reads state.db with its -wal and -shm from beside it (a backup from \`k3s-etcd k3s backup\`, or a
copy made with K3s stopped), checks integrity and schema, and writes the latest value of every
key (kine's own selection; kine's internal rows left out) into the etcd of the cluster, values
byte for byte, one lease per TTL, in create-only transactions: an existing key is never
overwritten and a re-run after an interruption finishes the job. Then every key is read back
and a SHA-256 over the (key, value) pairs is compared. The report is saved in
migrations/<UTC time>/report.md.

The token (--token-file PATH, --token-file - to read it from standard input, or the token file
beside a backup's state.db; --token TOKEN works too, with a warning: other users of this machine
can read a command line) must be the one that sealed the state's /bootstrap key: another is
refused before anything is written, since K3s would not start. A target already holding
/registry/ or /bootstrap/ keys is refused unless --force (only missing keys are added). --dry-run writes nothing and prints the report.

Each transaction stays under the target's request limit: etcd's default --max-request-bytes
(1572864 bytes) unless --max-request-bytes gives the target's own value. A single value too
large for it is refused, by name, before anything is written. On a terminal a progress line
(rows read, keys written, bytes, time left) is kept on stderr; --json and pipes get none.`,
  options: {
    source: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    'max-request-bytes': { type: 'string' },
  },
  async run(ctx) {
    const source = ctx.values['source'];
    if (typeof source !== 'string')
      throw new UsageError('migrate sqlite-to-etcd needs --source PATH/state.db');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const token = await tokenFromOptions(ctx);
    const maxRequestBytes = requestLimit(ctx.values['max-request-bytes']);
    const line = progressLine(ctx.global.json);
    const onProgress = (p: MigrationProgress) => line.update(progressText(p));
    const src = await readSource(resolve(ctx.io.cwd, source), {
      ...(token ? { token } : {}),
      ...(maxRequestBytes ? { maxRequestBytes } : {}),
      onProgress,
    }).finally(() => line.done());
    const workspace = dirname(ctx.global.inventory);
    if (ctx.values['dry-run'] === true) {
      const text = migrationReport(cluster.name, src);
      if (ctx.global.json) json(ctx, src.pre);
      else ctx.io.out(text);
      return 0;
    }
    if (
      !(await confirm(
        ctx,
        `Write ${src.pre.liveKeys} key(s) into the etcd of ${cluster.name} (create-only; existing keys are never overwritten)?`,
      ))
    ) {
      ctx.io.err('Nothing written.');
      return 1;
    }
    const r = await migrateToEtcd(cluster, src, {
      force: ctx.values['force'] === true,
      onProgress,
    }).finally(() => line.done());
    const file = await saveReport(workspace, migrationReport(cluster.name, src, r));
    if (ctx.global.json) json(ctx, { report: file, ...r });
    else
      ctx.io.out(
        `${r.write.written} written, ${r.write.alreadyThere} already there, ${r.write.conflicts.length} conflict(s); verified: ${r.verify.ok ? 'yes' : 'NO'} (${r.verify.foundKeys}/${r.verify.expectedKeys} keys, SHA-256 ${r.verify.targetSha256.slice(0, 16)}…). Report: ${file}`,
      );
    return r.verify.ok && r.write.conflicts.length === 0 ? 0 : 1;
  },
};

export const MIGRATE_COMMANDS: Subcommand[] = [migrateCommand];
