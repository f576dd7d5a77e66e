/**
 * A performance check loads the very etcd K3s uses. Before a run, the cluster is read: whether it
 * holds K3s data (keys under /registry/), its database size and quota (etcd's own
 * `etcd_server_quota_backend_bytes`, or etcd's 2 GiB default when /metrics cannot be read), any
 * alarm, and how much the profile can add at its target rate. A run whose projected database
 * would pass a safe share of the quota is refused, with the longest duration that fits; a
 * cluster with K3s data needs a confirmation that says so. If a NOSPACE alarm is raised during
 * the run anyway (K3s writing beside it), the check's keys are deleted, the history compacted,
 * every member defragmented and the alarm disarmed once there is room again.
 */
import type { AlarmType, Etcd3 } from 'etcd3';
import { humanBytes } from '../../shared/etcdTypes';
import { errorMessage } from '../errors';
import { RAISE_QUOTA } from '../inventory/etcdTuning';
import { ETCD_DEFAULT_QUOTA_BYTES, readQuota, type ActiveAlarm } from '../etcd/alarms';
import { createEndpointClient, type EtcdTls } from '../etcd/client';
import { ClusterTls } from '../etcd/clusterTls';
import { openRpc, type EtcdRangeRpc, type EtcdRpc } from '../etcd/rpc';
import { prefixRangeEnd } from './connections';
import { compactAndDefrag } from './perf';
import { dbSpace } from './reclaim';
import { PERF_PROFILES } from './stats';
import type { PerfLoad } from '../../shared/perfTypes';

/**
 * Database growth per check-perf write (256-byte key, 1 KiB value), its delete included: measured
 * on etcd 3.4 with bbolt (about 2.0 KiB per put, 2.4 KiB with the delete's tombstones), rounded up.
 */
export const BYTES_PER_PERF_WRITE = 2560;
/** etcd's AlarmType NOSPACE as the wire wants it (the enum's number; etcd3 is loaded lazily). */
const NOSPACE = 1 as AlarmType;
/** The share of the quota a check may take the database to: where the metrics rule warns. */
export const SAFE_QUOTA_SHARE = 0.6;

export interface PerfPreflight {
  load: PerfLoad;
  durationSec: number;
  /** Keys under /registry/: K3s (or Kubernetes) keeps its state there. */
  registryKeys: number;
  /** The largest member's database. */
  dbBytes: number;
  quotaBytes: number;
  quotaFrom: 'metrics' | 'default';
  /** Alarms active now (`NOSPACE`, `CORRUPT`), by member. */
  alarms: string[];
  /** Writes at the profile's target rate for the whole duration: an upper bound. */
  projectedWrites: number;
  projectedBytes: number;
  /** Set when the check must not run, in words with what to do. */
  refusal?: string;
  /** Set when the cluster holds K3s data: the confirmation's text. */
  confirmation?: string;
}

export interface PerfPreflightOptions {
  endpoints: readonly string[];
  tls?: EtcdTls;
  load: PerfLoad;
  durationSec: number;
  timeoutMs?: number;
}

async function firstAnswering<T>(
  endpoints: readonly string[],
  opts: { tls?: EtcdTls; timeoutMs: number },
  f: (client: Etcd3, endpoint: string) => Promise<T>,
): Promise<T> {
  let last: unknown = new Error('no endpoints');
  for (const endpoint of endpoints) {
    const client = await createEndpointClient(endpoint, {
      timeoutMs: opts.timeoutMs,
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    try {
      return await f(client, endpoint);
    } catch (err) {
      last = err;
    } finally {
      client.close();
    }
  }
  throw last;
}

/**
 * firstAnswering over the small gRPC client (etcd/rpc.ts): what the check reads before and
 * after every run, without loading etcd3 (its gRPC stack and .proto parsing cost more CPU than
 * a short run's writes). The TLS files are read once; every client is closed.
 */
async function firstAnsweringRpc<T>(
  endpoints: readonly string[],
  opts: { tls?: EtcdTls; timeoutMs: number },
  f: (client: EtcdRpc & EtcdRangeRpc) => Promise<T>,
): Promise<T> {
  const clusterTls = opts.tls ? await ClusterTls.load(opts.tls) : undefined;
  let last: unknown = new Error('no endpoints');
  for (const endpoint of endpoints) {
    // One at a time: the next endpoint is dialled only when this one does not answer.
    const client = openRpc(endpoint, {
      timeoutMs: opts.timeoutMs,
      ...(clusterTls ? { clusterTls } : {}),
    });
    try {
      return await f(client);
    } catch (err) {
      last = err;
    } finally {
      client.close();
    }
  }
  throw last;
}

/** etcd's active alarms, as alarms.ts's activeAlarms gives them (names, decimal member IDs). */
async function alarmsOf(c: EtcdRpc): Promise<ActiveAlarm[]> {
  return (await c.alarms()).alarms;
}

const REGISTRY = Buffer.from('/registry/');

export async function perfPreflight(opts: PerfPreflightOptions): Promise<PerfPreflight> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = { timeoutMs, ...(opts.tls ? { tls: opts.tls } : {}) };
  const { registryKeys, alarms } = await firstAnsweringRpc(opts.endpoints, conn, async (c) => {
    const [count, active] = await Promise.all([
      c.rangeOver(REGISTRY, prefixRangeEnd(REGISTRY), { countOnly: true }),
      alarmsOf(c),
    ]);
    return {
      registryKeys: Number(count.count),
      alarms: active.map((a) => `${a.alarm} on member ${a.memberID}`),
    };
  });
  // A member that does not answer is left out of the load too.
  const { dbBytes } = await dbSpace(opts.endpoints, conn);
  const quota = await readQuota(opts.endpoints, opts.tls);
  const quotaBytes = quota ?? ETCD_DEFAULT_QUOTA_BYTES;
  const profile = PERF_PROFILES[opts.load];
  const projectedWrites = Math.ceil(profile.rate * opts.durationSec);
  const projectedBytes = projectedWrites * BYTES_PER_PERF_WRITE;
  const p: PerfPreflight = {
    load: opts.load,
    durationSec: opts.durationSec,
    registryKeys,
    dbBytes,
    quotaBytes,
    quotaFrom: quota === undefined ? 'default' : 'metrics',
    alarms,
    projectedWrites,
    projectedBytes,
  };
  const refusal = refusalOf(p);
  if (refusal) p.refusal = refusal;
  if (registryKeys > 0) p.confirmation = confirmationOf(p);
  return p;
}

const quotaWords = (p: PerfPreflight) =>
  `${humanBytes(p.quotaBytes)}${p.quotaFrom === 'default' ? " (etcd's default; its /metrics could not be read)" : ''}`;

function refusalOf(p: PerfPreflight): string | undefined {
  if (p.alarms.length > 0)
    return `The cluster has an alarm (${p.alarms.join(', ')}): a load now would only make it worse. Compact, defragment and disarm it first (etcdctl alarm disarm), then run the check.`;
  const limit = p.quotaBytes * SAFE_QUOTA_SHARE;
  if (p.dbBytes + p.projectedBytes <= limit) return undefined;
  const room = Math.max(0, limit - p.dbBytes);
  const fits = Math.floor(room / BYTES_PER_PERF_WRITE / PERF_PROFILES[p.load].rate);
  return (
    `Load ${p.load} for ${p.durationSec} s writes up to ${p.projectedWrites.toLocaleString('en-US')} keys (about ${humanBytes(p.projectedBytes)} until compaction) ` +
    `into a database of ${humanBytes(p.dbBytes)} with a quota of ${quotaWords(p)}: that passes ${Math.round(SAFE_QUOTA_SHARE * 100)}% of the quota, ` +
    `and at the quota etcd raises NOSPACE and refuses every write${p.registryKeys > 0 ? ", K3s's included" : ''}. ` +
    (fits >= 1
      ? `Run it for at most ${fits} s, choose a smaller load, or ${RAISE_QUOTA}.`
      : `Choose a smaller load, compact and defragment first, or ${RAISE_QUOTA}.`)
  );
}

function confirmationOf(p: PerfPreflight): string {
  return (
    `This etcd holds K3s data (${p.registryKeys.toLocaleString('en-US')} keys under /registry/). ` +
    `The check (load ${p.load}, ${p.durationSec} s) writes up to ${p.projectedWrites.toLocaleString('en-US')} keys of 1 KiB under its own prefix, ` +
    `about ${humanBytes(p.projectedBytes)} until compaction, into a database of ${humanBytes(p.dbBytes)} with a quota of ${quotaWords(p)}; ` +
    "K3s's own requests slow down while it runs. The test keys are deleted afterwards."
  );
}

export interface NoSpaceRecovery {
  /** Whether a NOSPACE alarm was active after the run. */
  raised: boolean;
  /** The alarm is disarmed and the database has room again. */
  recovered: boolean;
  /** What was done, in order, in words. */
  steps: string[];
  /** The largest member's database after the recovery. */
  dbBytes?: number;
}

/**
 * After a run: when a NOSPACE alarm is active, delete the check's keys (deletes are allowed at
 * the quota), compact at the current revision, defragment every member one at a time, and disarm
 * once every database is back under the safe share of the quota. Nothing is done without an alarm.
 */
export async function recoverFromNoSpace(opts: {
  endpoints: readonly string[];
  tls?: EtcdTls;
  prefix: string;
  quotaBytes: number;
  timeoutMs?: number;
}): Promise<NoSpaceRecovery> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const conn = { timeoutMs, ...(opts.tls ? { tls: opts.tls } : {}) };
  const noSpace = await firstAnsweringRpc(opts.endpoints, conn, async (c) =>
    (await alarmsOf(c)).filter((a) => a.alarm === 'NOSPACE'),
  );
  if (noSpace.length === 0) return { raised: false, recovered: false, steps: [] };
  const steps: string[] = [
    `etcd raised NOSPACE during the check (database at its quota of ${humanBytes(opts.quotaBytes)})`,
  ];
  const revision = await firstAnsweringRpc(opts.endpoints, conn, async (c) => {
    const prefix = Buffer.from(opts.prefix);
    const del = await c.deleteRange(prefix, prefixRangeEnd(prefix));
    steps.push(`deleted the check's keys under ${opts.prefix} (${del.deleted})`);
    return del.revision;
  });
  const done = await compactAndDefrag(opts.endpoints, opts.tls, revision, { timeoutMs });
  steps.push(
    done.compacted
      ? `compacted the history at revision ${revision}`
      : `compaction failed: ${done.compactError ?? 'unknown error'}`,
  );
  for (const d of done.defragmented)
    steps.push(
      d.ok ? `defragmented ${d.endpoint}` : `defragmentation of ${d.endpoint} failed: ${d.error}`,
    );
  // A member that does not answer counts as failed through the defragmentation result.
  const { dbBytes } = await dbSpace(opts.endpoints, conn);
  const room = dbBytes < opts.quotaBytes * SAFE_QUOTA_SHARE;
  if (!done.compacted || done.defragmented.some((d) => !d.ok) || !room) {
    steps.push(
      room
        ? 'the alarm was left armed because the clean-up did not finish; run etcdctl defrag and etcdctl alarm disarm'
        : `the alarm was left armed: the database still holds ${humanBytes(dbBytes)} of ${humanBytes(opts.quotaBytes)} after compaction; ${RAISE_QUOTA}, or delete data; then etcdctl alarm disarm`,
    );
    return { raised: true, recovered: false, steps, dbBytes };
  }
  try {
    await firstAnswering(opts.endpoints, conn, async (c) => {
      for (const a of noSpace)
        await c.maintenance.alarm({ action: 'Deactivate', memberID: a.memberID, alarm: NOSPACE });
    });
  } catch (err) {
    steps.push(`disarming the alarm failed (${errorMessage(err)}): run etcdctl alarm disarm`);
    return { raised: true, recovered: false, steps, dbBytes };
  }
  steps.push(`disarmed the alarm; the database is ${humanBytes(dbBytes)} again`);
  return { raised: true, recovered: true, steps, dbBytes };
}
