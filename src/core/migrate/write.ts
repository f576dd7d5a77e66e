/**
 * Writing kine's latest state into etcd, and proving it arrived. Rows go in revision order, in
 * create-only transactions (a key that exists is never overwritten), batched; a key already
 * holding the same bytes counts as done, so a re-run after an interruption finishes the job
 * without duplicating or overwriting. A transaction holds at most 128 puts (etcd's
 * --max-txn-ops) and stays under the target's request limit (--max-request-bytes, 1.5 MiB by
 * default), so megabyte values side by side go in separate transactions. Kine stores TTLs, not leases: one etcd lease is granted per
 * distinct TTL and attached to its keys (the TTL restarts, as it does when kine restarts).
 * The verification reads every migrated key back in pages: count, leased count, and a SHA-256
 * over the sorted (key, value) pairs compared with the source's.
 */
import type { Etcd3 } from 'etcd3';
import { CancelledError, K3sEtcdError } from '../errors';
import { prefixEnd, rangePages } from '../etcd/paginate';
import {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  putCost,
  TXN_OVERHEAD,
  type KineKey,
  type KineRow,
} from './kine';
import { pairsHasher } from './preflight';
import { PhaseClock, type MigrationProgress } from './progress';

/** Prefixes a fresh target must not hold (K3s's data and its bootstrap key). */
export const TARGET_PREFIXES = ['/registry/', '/bootstrap/'] as const;

export async function targetCounts(client: Etcd3): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of TARGET_PREFIXES) out[p] = await client.getAll().prefix(p).count();
  return out;
}

/** What the core reports while writing (see ./progress.ts). */
export type WriteProgress = MigrationProgress;

export interface WriteResult {
  written: number;
  /** Keys that already held exactly these bytes (an earlier, interrupted run). */
  alreadyThere: number;
  /** Keys that exist in the target with other bytes: left untouched. */
  conflicts: string[];
  /** TTL seconds → granted lease ID (hex). */
  leases: Record<string, string>;
  /** Transactions sent for the batches (resumed batches take more than one). */
  transactions: number;
}

const same = (a: Buffer | null | undefined, b: Uint8Array) =>
  a !== null && a !== undefined && a.equals(Buffer.from(b));

/**
 * Keys cut into transactions of at most `maxOps` puts whose bytes stay under the request limit;
 * a key too large for a transaction of its own goes alone (the preflight refuses it first).
 */
export function batches<R extends { name: string; bytes: number }>(
  rows: readonly R[],
  maxOps: number,
  maxRequestBytes: number,
): R[][] {
  const budget = maxRequestBytes - TXN_OVERHEAD;
  const out: R[][] = [];
  let cur: R[] = [];
  let bytes = 0;
  for (const r of rows) {
    const cost = putCost(r.name, r.bytes);
    if (cur.length > 0 && (cur.length >= maxOps || bytes + cost > budget)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(r);
    bytes += cost;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * Writes `keys` in revision order, their values read by `valueOf` one transaction ahead (while
 * the previous one is in flight), so only about two transactions' values are held at a time.
 */
export async function writeRows(
  client: Etcd3,
  keys: readonly KineKey[],
  valueOf: (k: KineKey) => Uint8Array,
  opts: {
    batch?: number;
    maxRequestBytes?: number;
    signal?: AbortSignal;
    onProgress?(p: MigrationProgress): void;
    /** History rows read (for the progress report). */
    rows?: number;
  } = {},
): Promise<WriteResult> {
  const maxOps = Math.max(1, Math.min(opts.batch ?? 128, 128)); // etcd's --max-txn-ops is 128
  const maxRequestBytes = opts.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
  const leaseIds = new Map<number, string>();
  const leaseFor = async (ttl: number): Promise<string | undefined> => {
    if (ttl <= 0) return undefined;
    let id = leaseIds.get(ttl);
    if (!id) {
      const lease = client.lease(ttl, { autoKeepAlive: false });
      id = await lease.grant();
      leaseIds.set(ttl, id);
    }
    return id;
  };
  const result: WriteResult = {
    written: 0,
    alreadyThere: 0,
    conflicts: [],
    leases: {},
    transactions: 0,
  };
  // A PutBuilder is thenable (awaiting it runs the put): leases are granted first, the builders
  // are only handed to transactions.
  const putOf = (r: KineRow) => {
    const put = client
      .put(r.name)
      .value(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
    const lease = leaseIds.get(r.lease);
    return lease ? put.lease(lease) : put;
  };
  /** One key, create-only; an existing key is compared. */
  const one = async (r: KineRow) => {
    result.transactions++;
    const res = await client
      .if(r.name, 'Create', '==', 0)
      .then(putOf(r))
      .else(client.get(r.name))
      .commit();
    if (res.succeeded) result.written++;
    else if (same(res.responses[0]?.response_range?.kvs[0]?.value, r.value)) result.alreadyThere++;
    else result.conflicts.push(r.name);
  };
  /**
   * All keys new: one transaction writes the batch. Otherwise (a resumed run) the same
   * transaction reads the batch's keys instead: those there are compared, the rest are written
   * again in one transaction, until none is left.
   */
  const commit = async (chunk: KineRow[]): Promise<void> => {
    let txn = client.if(chunk[0]!.name, 'Create', '==', 0);
    for (const r of chunk.slice(1)) txn = txn.and(r.name, 'Create', '==', 0);
    result.transactions++;
    let res;
    try {
      res = await txn
        .then(...chunk.map(putOf))
        .else(...chunk.map((r) => client.get(r.name)))
        .commit();
    } catch (err) {
      if (/request is too large/i.test(String(err))) {
        throw new K3sEtcdError(
          'migrate-target',
          `The target refused a transaction as too large: its --max-request-bytes is smaller than the ${maxRequestBytes} bytes the migration planned for (--max-request-bytes, else etcd.maxRequestBytes in k3s-etcd.yaml, else etcd's default ${ETCD_DEFAULT_MAX_REQUEST_BYTES}). Give the target's own value with --max-request-bytes. What was written stays; a re-run continues from there.`,
          { cause: err },
        );
      }
      // Values already there that are larger than ours can make the reply too large: key by key.
      if (!/received message larger than max|RESOURCE_EXHAUSTED/i.test(String(err))) throw err;
      for (const r of chunk) await one(r);
      return;
    }
    if (res.succeeded) {
      result.written += chunk.length;
      return;
    }
    const missing: KineRow[] = [];
    chunk.forEach((r, i) => {
      const kv = res.responses[i]?.response_range?.kvs[0];
      if (!kv) missing.push(r);
      else if (same(kv.value, r.value)) result.alreadyThere++;
      else result.conflicts.push(r.name);
    });
    if (missing.length > 0) await commit(missing);
  };
  const bytesTotal = keys.reduce((n, r) => n + Buffer.byteLength(r.name) + r.bytes, 0);
  const clock = new PhaseClock();
  let done = 0;
  let bytesDone = 0;
  const all = batches(keys, maxOps, maxRequestBytes);
  const load = (chunk: readonly KineKey[] | undefined) =>
    chunk?.map((k) => ({ ...k, value: valueOf(k) }));
  let next = load(all[0]);
  for (let i = 0; i < all.length; i++) {
    if (opts.signal?.aborted) throw new CancelledError('migration');
    const chunk = next!;
    for (const r of chunk) await leaseFor(r.lease);
    const sent = commit(chunk);
    next = load(all[i + 1]);
    await sent;
    done += chunk.length;
    for (const r of chunk) bytesDone += Buffer.byteLength(r.name) + r.value.byteLength;
    opts.onProgress?.({
      phase: 'write',
      done,
      total: keys.length,
      rows: opts.rows ?? 0,
      written: result.written,
      alreadyThere: result.alreadyThere,
      bytesDone,
      bytesTotal,
      etaSec: clock.eta(bytesDone / Math.max(1, bytesTotal)),
    });
  }
  for (const [ttl, id] of leaseIds) result.leases[String(ttl)] = BigInt(id).toString(16);
  return result;
}

export interface Verification {
  expectedKeys: number;
  foundKeys: number;
  leasedExpected: number;
  leasedFound: number;
  sourceSha256: string;
  targetSha256: string;
  ok: boolean;
  missing: string[];
}

/**
 * The key ranges that hold `names`, sorted and disjoint: `/a/...` names under the range of their
 * first segment (`/a/`), any other name alone. Read in this order, keys come out sorted.
 */
export function rangesFor(names: Iterable<string>): { start: Buffer; end: Buffer }[] {
  const ranges: { start: Buffer; end: Buffer }[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    const m = /^\/[^/]+\//.exec(n);
    const p = m ? m[0] : n;
    if (seen.has(p)) continue;
    seen.add(p);
    const start = Buffer.from(p);
    ranges.push({ start, end: m ? prefixEnd(start) : Buffer.concat([start, Buffer.from([0])]) });
  }
  ranges.sort((a, b) => Buffer.compare(a.start, b.start));
  // A lone name inside a prefix's range (or overlapping ranges): merged.
  const out: { start: Buffer; end: Buffer }[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && Buffer.compare(r.start, last.end) < 0) {
      if (Buffer.compare(r.end, last.end) > 0) last.end = r.end;
    } else out.push({ ...r });
  }
  return out;
}

/**
 * Reads every migrated key back, page by page (no reply grows with the cluster), and compares
 * count, leases and the SHA-256 over the sorted (key, value) pairs with the source's.
 */
export async function verifyTarget(
  client: Etcd3,
  rows: readonly { name: string; lease: number }[],
  sourceSha256: string,
  opts: { signal?: AbortSignal; onProgress?(p: MigrationProgress): void; rows?: number } = {},
): Promise<Verification> {
  const want = new Map(rows.map((r) => [r.name, r.lease > 0]));
  const found = new Set<string>();
  let leasedFound = 0;
  const hash = pairsHasher();
  const clock = new PhaseClock();
  for (const range of rangesFor(want.keys())) {
    // Windowed: etcd 3.4 walks the whole rest of a limited range for every page (O(n^2)).
    const pages = rangePages(client, {
      ...range,
      windowed: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    for await (const { kvs } of pages) {
      opts.onProgress?.({
        phase: 'verify',
        done: found.size,
        total: want.size,
        rows: opts.rows ?? 0,
        written: 0,
        alreadyThere: 0,
        bytesDone: 0,
        bytesTotal: 0,
        etaSec: clock.eta(found.size / Math.max(1, want.size)),
      });
      for (const kv of kvs) {
        const key = kv.key.toString();
        const leased = want.get(key);
        if (leased === undefined) continue;
        found.add(key);
        if (leased && kv.lease !== '0') leasedFound++;
        hash.add(kv.key, kv.value);
      }
    }
  }
  const leasedExpected = rows.filter((r) => r.lease > 0).length;
  const targetSha256 = hash.digest();
  const missing = [...want.keys()].filter((k) => !found.has(k));
  return {
    expectedKeys: want.size,
    foundKeys: found.size,
    leasedExpected,
    leasedFound,
    sourceSha256,
    targetSha256,
    missing,
    ok: missing.length === 0 && targetSha256 === sourceSha256 && leasedFound === leasedExpected,
  };
}

/** Refuses a target that already holds K3s data, naming the counts, unless forced. */
export function requireEmptyTarget(counts: Record<string, number>, force: boolean): void {
  const held = Object.entries(counts).filter(([, n]) => n > 0);
  if (held.length > 0 && !force) {
    throw new K3sEtcdError(
      'migrate-target',
      `The target etcd already holds ${held.map(([p, n]) => `${n} key(s) under ${p}`).join(' and ')}: a migration goes into an empty datastore. Use another etcd, or --force to add only the keys that are missing (existing keys are never overwritten).`,
    );
  }
}
