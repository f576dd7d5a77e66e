/**
 * `k3s-etcd migrate sqlite-to-etcd`: K3s's SQLite state into the cluster's external etcd;
 * `migrate etcd-to-sqlite`: the way back, etcd into a new kine database.
 */
import { dirname, resolve } from 'node:path';
import { healthyClient } from '../core/etcd/connection';
import { readEtcd } from '../core/migrate/etcdSource';
import { migrateToEtcd, migrationReport, readSource, saveReport } from '../core/migrate/migrate';
import { migrateToSqlite, requireNewTarget } from '../core/migrate/toSqlite';
import { toSqliteReport } from '../core/migrate/toSqliteReport';
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

const backCommand: Subcommand = {
  name: 'migrate etcd-to-sqlite',
  summary: "Copy K3s's data from the external etcd into a new SQLite state.db (kine), verified",
  usage:
    'k3s-etcd migrate etcd-to-sqlite --target PATH/state.db [--token-file PATH | --token-file - | --token TOKEN] [--dry-run] [--yes]',
  details: `Reads the cluster's etcd in pages at one revision (K3s's /registry/ and /bootstrap/ keys; kine's
own names and other prefixes are counted, not carried) and writes a NEW kine database at
--target exactly as kine would hold it: kine's schema and indexes, its compact_rev_key row, one
create row per key in etcd's modification order, each leased key with its lease's TTL in
seconds (what kine stores). The file is written as PATH.part by sqlite3 (it must be installed),
then read back: kine's selection of it must equal etcd's keys (count, leased count, SHA-256 over
key, value and TTL) before it is renamed to PATH. A failed verification keeps PATH.part and
exits 1. An existing PATH is refused: move it aside first.

The token (--token-file PATH, --token-file - for standard input, or --token TOKEN with a
warning) must decrypt etcd's /bootstrap key, as in sqlite-to-etcd: K3s on SQLite must start
with it. Stop the K3s servers first: writes after the revision read are not in the file.
--dry-run writes nothing and prints what would be written (keys, bytes, leases). The report is
saved in migrations/<UTC time>/report.md. This writes the file only: putting it in place and
re-pointing K3s is yours (the report says how).`,
  options: {
    target: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
  },
  async run(ctx) {
    const t = ctx.values['target'];
    if (typeof t !== 'string')
      throw new UsageError('migrate etcd-to-sqlite needs --target PATH/state.db');
    const target = resolve(ctx.io.cwd, t);
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const token = await tokenFromOptions(ctx);
    requireNewTarget(target);
    const line = progressLine(ctx.global.json);
    const onProgress = (p: MigrationProgress) => line.update(progressText(p));
    const { client } = await healthyClient(cluster, { timeoutMs: 10_000 });
    try {
      const src = await readEtcd(client, { ...(token ? { token } : {}), onProgress }).finally(() =>
        line.done(),
      );
      const { keys, ...figures } = src;
      if (ctx.values['dry-run'] === true) {
        if (ctx.global.json) json(ctx, { target, keyCount: keys.length, ...figures });
        else ctx.io.out(toSqliteReport(cluster.name, target, src));
        return 0;
      }
      if (
        !(await confirm(
          ctx,
          `Write ${keys.length} key(s) (${src.totalBytes} bytes, ${src.leasedKeys} leased) from the etcd of ${cluster.name} into a new ${target}?`,
        ))
      ) {
        ctx.io.err('Nothing written.');
        return 1;
      }
      const r = await migrateToSqlite(client, src, target, { onProgress }).finally(() =>
        line.done(),
      );
      const file = await saveReport(
        dirname(ctx.global.inventory),
        toSqliteReport(cluster.name, target, src, r),
      );
      if (ctx.global.json) json(ctx, { report: file, ...r });
      else
        ctx.io.out(
          r.verify.ok
            ? `${r.write.written} key(s) written to ${r.file}; verified: yes (${r.verify.foundKeys}/${r.verify.expectedKeys} keys, ${r.verify.leasedFound} leased, SHA-256 ${r.verify.targetSha256.slice(0, 16)}…). Report: ${file}`
            : `verified: NO (${r.verify.foundKeys}/${r.verify.expectedKeys} keys, ${r.verify.leasedFound}/${r.verify.leasedExpected} leased, in order: ${r.verify.ordered ? 'yes' : 'no'}): ${r.file} is kept to inspect; ${target} was not written. Report: ${file}`,
        );
      return r.verify.ok ? 0 : 1;
    } finally {
      client.close();
    }
  },
};

export const MIGRATE_COMMANDS: Subcommand[] = [migrateCommand, backCommand];
