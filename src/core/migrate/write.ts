/**
 * Writing kine's latest state into etcd, and proving it arrived. Rows go in revision order, in
 * create-only transactions (a key that exists is never overwritten), batched; a key already
 * holding the same bytes counts as done, so a re-run after an interruption finishes the job
 * without duplicating or overwriting. Kine stores TTLs, not leases: one etcd lease is granted per
 * distinct TTL and attached to its keys (the TTL restarts, as it does when kine restarts).
 * The verification reads every migrated key back: count, leased count, and a SHA-256 over the
 * sorted (key, value) pairs compared with the source's.
 */
import type { Etcd3 } from 'etcd3';
import { CancelledError, K3sEtcdError } from '../errors';
import { pairsHash, type KineRow } from './kine';

/** Prefixes a fresh target must not hold (K3s's data and its bootstrap key). */
export const TARGET_PREFIXES = ['/registry/', '/bootstrap/'] as const;

export async function targetCounts(client: Etcd3): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of TARGET_PREFIXES) out[p] = await client.getAll().prefix(p).count();
  return out;
}

export interface WriteProgress {
  done: number;
  total: number;
  written: number;
  alreadyThere: number;
}

export interface WriteResult {
  written: number;
  /** Keys that already held exactly these bytes (an earlier, interrupted run). */
  alreadyThere: number;
  /** Keys that exist in the target with other bytes: left untouched. */
  conflicts: string[];
  /** TTL seconds → granted lease ID (hex). */
  leases: Record<string, string>;
}

const same = (a: Buffer | null, b: Uint8Array) => a !== null && a.equals(Buffer.from(b));

export async function writeRows(
  client: Etcd3,
  rows: readonly KineRow[],
  opts: { batch?: number; signal?: AbortSignal; onProgress?(p: WriteProgress): void } = {},
): Promise<WriteResult> {
  const batch = Math.max(1, Math.min(opts.batch ?? 64, 128)); // etcd's --max-txn-ops is 128
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
  const result: WriteResult = { written: 0, alreadyThere: 0, conflicts: [], leases: {} };
  // A PutBuilder is thenable (awaiting it runs the put): leases are granted first, the builders
  // are only handed to transactions.
  const putOf = (r: KineRow) => {
    const put = client.put(r.name).value(Buffer.from(r.value));
    const lease = leaseIds.get(r.lease);
    return lease ? put.lease(lease) : put;
  };
  for (let i = 0; i < rows.length; i += batch) {
    if (opts.signal?.aborted) throw new CancelledError('migration');
    const chunk = rows.slice(i, i + batch);
    // All keys new: one transaction writes the whole batch.
    let txn = client.if(chunk[0]!.name, 'Create', '==', 0);
    for (const r of chunk.slice(1)) txn = txn.and(r.name, 'Create', '==', 0);
    for (const r of chunk) await leaseFor(r.lease);
    const res = await txn.then(...chunk.map(putOf)).commit();
    if (res.succeeded) {
      result.written += chunk.length;
    } else {
      // Some exist (a resumed run): key by key, create-only; an existing key is compared.
      for (const r of chunk) {
        const one = await client
          .if(r.name, 'Create', '==', 0)
          .then(putOf(r))
          .else(client.get(r.name))
          .commit();
        if (one.succeeded) result.written++;
        else {
          const kv = one.responses[0]?.response_range?.kvs[0];
          if (kv && same(kv.value, r.value)) result.alreadyThere++;
          else result.conflicts.push(r.name);
        }
      }
    }
    opts.onProgress?.({
      done: Math.min(i + batch, rows.length),
      total: rows.length,
      written: result.written,
      alreadyThere: result.alreadyThere,
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

/** Reads every migrated key back and compares count, leases and the (key, value) hash. */
export async function verifyTarget(
  client: Etcd3,
  rows: readonly KineRow[],
  sourceSha256: string,
): Promise<Verification> {
  const want = new Set(rows.map((r) => r.name));
  const got = new Map<string, { value: Buffer; lease: string }>();
  const prefixes = new Set(
    rows.map((r) => (r.name.startsWith('/') ? `/${r.name.split('/')[1]}/` : r.name)),
  );
  for (const p of prefixes) {
    const res = await client.getAll().prefix(p).exec();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      if (want.has(key)) got.set(key, { value: kv.value, lease: kv.lease });
    }
  }
  const leasedExpected = rows.filter((r) => r.lease > 0).length;
  const leasedFound = rows.filter(
    (r) => r.lease > 0 && (got.get(r.name)?.lease ?? '0') !== '0',
  ).length;
  const targetSha256 = pairsHash([...got].map(([key, v]) => ({ key, value: v.value })));
  const missing = [...want].filter((k) => !got.has(k));
  return {
    expectedKeys: want.size,
    foundKeys: got.size,
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
