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
  type RunContext,
  type Subcommand,
} from './context';

import { progressLine } from './progressLine';
import { cancelOnSigint, printer, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';
import type { Cluster } from '../core/inventory/types';
import { planMoveBack, runMoveBack } from '../core/moveBack/run';
import { moveBackOutcome, moveBackPlanLines, moveBackQuestion } from '../core/moveBack/words';
import { prepareMove } from '../core/embeddedMove/preflight';
import { movePlanText, moveQuestion } from '../core/embeddedMove/plan';
import { repointWords, runMove } from '../core/embeddedMove/run';
import { fileTokenStore } from '../core/k3s/token';

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

Each transaction stays under the target's request limit: --max-request-bytes, else the
inventory's etcd.maxRequestBytes, else etcd's default (1572864 bytes). A single value too
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
    // The target's limit: the flag, else what the inventory provisions (etcd.maxRequestBytes).
    const maxRequestBytes =
      requestLimit(ctx.values['max-request-bytes']) ?? cluster.etcd.tuning.maxRequestBytes;
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
    // Ctrl+C stops after the transaction in flight; a re-run continues from there.
    const cancel = cancelOnSigint(ctx);
    const r = await migrateToEtcd(cluster, src, {
      force: ctx.values['force'] === true,
      signal: cancel.signal,
      onProgress,
    }).finally(() => {
      line.done();
      cancel.dispose();
    });
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
    'k3s-etcd migrate etcd-to-sqlite --target PATH/state.db [--token-file PATH | --token-file - | --token TOKEN] [--repoint [--server NAME] [--accept-new-host-keys]] [--dry-run] [--yes]',
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
saved in migrations/<UTC time>/report.md. Without --repoint this writes the file only: putting
it in place and re-pointing K3s is yours (the report says how).

--repoint does the whole move over SSH, as one confirmed plan. K3s on SQLite runs one server:
--server NAME names the one that keeps running (the only K3s server by default; with several,
naming it is required). First every server is read (nothing changes if one cannot be, or if
its config.yaml cannot be rewritten safely); then K3s is stopped on every server, one at a
time, the others with systemctl disable --now (they must rejoin as agents or be reinstalled),
BEFORE etcd is read, so no write made after the read is lost. The file is written and verified
as above; then on the kept server the state.db files there are moved aside (state.db.old-<UTC
time>, never deleted), the verified file is uploaded as /var/lib/rancher/k3s/server/db/state.db
(root, 0600, its SHA-256 checked on the host), /etc/rancher/k3s/config.yaml is rewritten without
datastore-endpoint, -cafile, -certfile and -keyfile (every other line kept, the old file beside
it), K3s is started and the node must be Ready. The first failure stops the run: a failure on
the kept server puts it back on etcd (old config.yaml, K3s restarted, Ready); etcd's data is
never changed. The words say which servers are stopped and how to start them again. Without a
token option the kept server's own token is checked against /bootstrap. --dry-run reads only
and prints the plan. Exit 0 when K3s is Ready on SQLite.

${SSH_HELP}`,
  options: {
    ...SSH_OPTIONS,
    target: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    repoint: { type: 'boolean', default: false },
    server: { type: 'string' },
  },
  async run(ctx) {
    const t = ctx.values['target'];
    if (typeof t !== 'string')
      throw new UsageError('migrate etcd-to-sqlite needs --target PATH/state.db');
    const target = resolve(ctx.io.cwd, t);
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    if (ctx.values['repoint'] !== true && typeof ctx.values['server'] === 'string')
      throw new UsageError('--server names the server that keeps running: it goes with --repoint');
    const token = await tokenFromOptions(ctx);
    requireNewTarget(target);
    if (ctx.values['repoint'] === true) return repoint(ctx, cluster, target, token);
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

/** `migrate etcd-to-sqlite --repoint`: the whole move back, as one confirmed plan. */
async function repoint(
  ctx: RunContext,
  cluster: Cluster,
  target: string,
  token: string | undefined,
): Promise<number> {
  const server = ctx.values['server'];
  const ssh = await sshContext(ctx);
  const line = progressLine(ctx.global.json);
  const onProgress = (p: MigrationProgress) => line.update(progressText(p));
  const opts = {
    ssh,
    target,
    ...(typeof server === 'string' ? { server } : {}),
    ...(token ? { token } : {}),
    onProgress,
  };
  const plan = await planMoveBack(cluster, opts).finally(() => line.done());
  if (ctx.values['dry-run'] === true) {
    if (ctx.global.json) json(ctx, { dryRun: true, ...plan.preview });
    else for (const l of moveBackPlanLines(plan.preview)) ctx.io.out(l);
    return 0;
  }
  if (!ctx.global.json) for (const l of moveBackPlanLines(plan.preview)) ctx.io.out(l);
  if (!(await confirm(ctx, moveBackQuestion(plan.preview)))) {
    ctx.io.err('Nothing changed.');
    return 1;
  }
  const cancel = cancelOnSigint(ctx);
  try {
    const r = await runMoveBack(cluster, plan, {
      ...opts,
      signal: cancel.signal,
      onLine: printer(ctx),
      onPhase: (_p, title) => {
        line.done();
        if (!ctx.global.json) ctx.io.out(`== ${title}`);
      },
    }).finally(() => line.done());
    const { source, ...rest } = r;
    const report =
      source && r.migration
        ? await saveReport(
            dirname(ctx.global.inventory),
            toSqliteReport(cluster.name, target, source, r.migration),
          )
        : undefined;
    const words = moveBackOutcome(r);
    if (ctx.global.json) json(ctx, { ...rest, ...(report ? { report } : {}), words });
    else {
      for (const l of words) ctx.io.out(l);
      if (report) ctx.io.out(`Report: ${report}`);
    }
    return r.ok ? 0 : 1;
  } finally {
    cancel.dispose();
  }
}

/** `migrate embedded-to-external`: K3s's embedded etcd into the external etcd, K3s re-pointed. */
const embeddedCommand: Subcommand = {
  name: 'migrate embedded-to-external',
  summary: 'Move K3s from its embedded etcd (cluster-init) onto the external etcd, verified',
  usage:
    'k3s-etcd migrate embedded-to-external --from SOURCE_CLUSTER [--cluster TARGET] [--dry-run] [--accept-new-host-keys] [--yes] [--json]',
  details: `--from names the cluster of K3s servers on K3s's embedded etcd (datastore: k3s-embedded-etcd,
hosts with roles etcd and k3s-server); --cluster the external etcd provisioned by k3s-etcd
(datastore: external-etcd), whose k3s-server hosts must include every source server at the same
address (one left out would stay on the old etcd: split brain).

First, read only (a dry run stops here and prints the plan): K3s's etcd client files read over
SSH from a source server (kept in memory), each source member's status through its loopback
over SSH (leader, version, revision, database size), the K3s token (the servers' own, or the
one stored for the target), the target's health and version; a target already holding
/registry/ or /bootstrap/ keys is refused. Then, after one confirmation: K3s stopped on every
source server, followers first and the leader last, so nothing can write any more; the
leader's etcd database (member/snap/db) copied as it lies into backups/<source>/ (0600,
git-ignored; size and SHA-256 checked against the host's), with the digest of its keys read
from the copy: the state K3s last wrote; the snapshot restored into the target's members
(--skip-hash-check: a copied database has no snapshot hash; --bump-revision --mark-compacted where
etcdutl 3.5.10+ has them; older tools keep the snapshot's revisions), the target's keys
compared with the snapshot's (count and SHA-256; a difference stops here), then each K3s
server re-pointed, the leader's first: embedded data moved aside (dated, never deleted),
config.yaml with datastore-endpoint and without cluster-init, K3s restarted, node
Ready. Until the re-point nothing of K3s's is changed: sudo systemctl start k3s on each server
goes back. Both directions, with the commands: docs/datastore-moves.md.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, from: { type: 'string' } },
  async run(ctx) {
    const from = ctx.values['from'];
    if (typeof from !== 'string')
      throw new UsageError(
        "migrate embedded-to-external needs --from SOURCE_CLUSTER (the cluster on K3s's embedded etcd)",
      );
    const inv = await loadValid(ctx);
    const source = selectCluster(inv, from);
    const target = selectCluster(inv, ctx.global.cluster);
    const ssh = await sshContext(ctx);
    const tokens = fileTokenStore(ctx.global.inventory);
    const prepared = await prepareMove(source, target, { ssh, tokens });
    const { plan } = prepared;
    if (ctx.values['dry-run'] === true) {
      if (ctx.global.json) json(ctx, plan);
      else for (const l of movePlanText(plan)) ctx.io.out(l);
      return 0;
    }
    if (!ctx.global.json) for (const l of movePlanText(plan)) ctx.io.out(l);
    if (!(await confirm(ctx, moveQuestion(plan)))) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const r = await runMove(source, target, prepared, {
      ssh,
      tokens,
      workspaceDir: dirname(ctx.global.inventory),
      onLine: printer(ctx),
      onPhase: (_p, n, title) => {
        if (!ctx.global.json) ctx.io.out(`== move ${n}/6: ${title}`);
      },
    });
    if (ctx.global.json) json(ctx, { plan, ...r });
    else {
      ctx.io.out('');
      if (r.snapshot) ctx.io.out(`snapshot: ${r.snapshot.file} (revision ${r.snapshot.revision})`);
      if (r.sourceDigest && r.targetDigest)
        ctx.io.out(
          `verified: ${r.targetDigest.keys}/${r.sourceDigest.keys} keys, SHA-256 ${r.targetDigest.sha256.slice(0, 16)}…`,
        );
      for (const k of r.kept) ctx.io.out(`${k.host}: embedded etcd data kept at ${k.path}`);
      for (const l of repointWords(r)) ctx.io.out(l);
      if (r.ok)
        ctx.io.out(`K3s runs on ${target.name}: ${plan.servers.join(', ')} re-pointed and Ready.`);
    }
    return r.ok ? 0 : 1;
  },
};

export const MIGRATE_COMMANDS: Subcommand[] = [migrateCommand, backCommand, embeddedCommand];
