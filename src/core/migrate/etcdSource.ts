/**
 * The way back, its source: the external etcd read in pages (etcd/paginate.ts: no reply grows
 * with the cluster; values up to etcd's request limit, many megabytes in a range), every page
 * pinned to the revision of the first one, so the keys are one consistent view. What K3s keeps
 * there is carried: `/registry/` and `/bootstrap/` (TARGET_PREFIXES, the keys the other
 * direction writes), kine's own names left out (kine makes its own); anything else is counted
 * by prefix and reported, never carried (the apiserver's `compact_rev_key`, this tool's
 * records). Leases become what kine stores: the TTL in seconds, one per lease (the lease's
 * granted TTL, from etcd's LeaseTimeToLive, asked once per lease). Only the keys' names,
 * revisions, TTLs and sizes are kept in memory; values are hashed as they pass and read again
 * when written.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { CancelledError, K3sEtcdError } from '../errors';
import { rangePages } from '../etcd/paginate';
import { checkToken, type TokenCheck } from './bootstrap';
import { isInternalKey, type KineRow } from './kine';
import { pairsHasher, prefixOf } from './preflight';
import type { MigrationProgress } from './progress';
import { TARGET_PREFIXES } from './write';

/** A key to write into kine: its etcd facts and its row id in the new database. */
export interface EtcdKey {
  name: string;
  /** etcd's mod revision: the rows go in this order. */
  modRevision: number;
  /** Kine's `lease` column: the TTL in seconds of the key's lease; 0 = none. */
  ttl: number;
  bytes: number;
  /** The row's id in the new database (1 is kine's compact_rev_key): set by `readEtcd`. */
  id: number;
}

export interface EtcdSource {
  /** The revision every page was read at; the write reads the same view again. */
  revision: string;
  /** The keys to write, in key order. */
  keys: EtcdKey[];
  /** Keys outside K3s's prefixes (or kine's own names), by prefix: not carried. */
  skipped: Record<string, number>;
  /** Leased keys whose lease ended while they were read: gone from etcd, not carried. */
  expired: number;
  /** TTL seconds → keys. */
  leases: Record<string, number>;
  leasedKeys: number;
  /** Bytes of keys and values to write. */
  totalBytes: number;
  largest?: { key: string; bytes: number };
  bootstrapKeys: string[];
  /** SHA-256 over the sorted (key, value, TTL) triples to be written (pairsHasher with ttl). */
  sha256: string;
  token: TokenCheck | { key?: undefined; found: false; note: string };
}

const ALL_KEYS = { start: Buffer.from([0]), end: Buffer.from([0]) };

/** Whether the way back carries `name` into kine. */
export function carried(name: string): boolean {
  return TARGET_PREFIXES.some((p) => name.startsWith(p)) && !isInternalKey(name);
}

/**
 * The TTL kine stores for each lease of `kvs` (asked of etcd once per lease, cached in `ttls`);
 * -1 for a lease that ended (its keys are gone).
 */
async function leaseTtls(client: Etcd3, kvs: IKeyValue[], ttls: Map<string, number>) {
  for (const kv of kvs) {
    if (kv.lease === '0' || ttls.has(kv.lease)) continue;
    const r = await client.leaseClient.leaseTimeToLive({ ID: kv.lease });
    ttls.set(kv.lease, Number(r.TTL) < 0 ? -1 : Number(r.grantedTTL));
  }
}

/** Pages of K3s's keys at `revision` (or the current one), with each key's TTL. */
export async function* carriedPages(
  client: Etcd3,
  opts: { revision?: string; signal?: AbortSignal; ttls?: Map<string, number> },
): AsyncGenerator<{ revision: string; kvs: { kv: IKeyValue; ttl: number }[]; other: string[] }> {
  const ttls = opts.ttls ?? new Map<string, number>();
  const pages = rangePages(client, {
    ...ALL_KEYS,
    // Windowed: etcd 3.4 walks the whole rest of a limited range for every page (O(n^2)).
    windowed: true,
    ...(opts.revision ? { revision: opts.revision } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    for await (const page of pages) {
      const mine = page.kvs.filter((kv) => carried(kv.key.toString()));
      await leaseTtls(client, mine, ttls);
      yield {
        revision: page.revision,
        kvs: mine.map((kv) => ({ kv, ttl: kv.lease === '0' ? 0 : ttls.get(kv.lease)! })),
        other: page.kvs.filter((kv) => !carried(kv.key.toString())).map((kv) => kv.key.toString()),
      };
    }
  } catch (err) {
    if (err instanceof CancelledError) throw err;
    if (/compacted/i.test(String((err as Error)?.message))) {
      throw new K3sEtcdError(
        'migrate-source',
        `etcd was compacted past revision ${opts.revision ?? '(the first page)'} while it was read: read it again (stop K3s first, so nothing changes). Nothing was written to the target.`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * One paginated pass over etcd: the keys to carry (their mod revisions give the row ids), the
 * figures of the dry run, the SHA-256 the verification compares, and the token check on the
 * `/bootstrap` key (as SQLite → etcd does it: a token that does not decrypt it is refused,
 * and without a token a state holding it is refused).
 */
export async function readEtcd(
  client: Etcd3,
  opts: { token?: string; signal?: AbortSignal; onProgress?(p: MigrationProgress): void } = {},
): Promise<EtcdSource> {
  const keys: EtcdKey[] = [];
  const skipped: Record<string, number> = {};
  const leases: Record<string, number> = {};
  const bootstrap: KineRow[] = [];
  const hash = pairsHasher();
  let revision = '';
  let expired = 0;
  let totalBytes = 0;
  let largest: EtcdSource['largest'];
  for await (const page of carriedPages(client, opts)) {
    revision = page.revision;
    for (const o of page.other) skipped[prefixOf(o)] = (skipped[prefixOf(o)] ?? 0) + 1;
    for (const { kv, ttl } of page.kvs) {
      if (ttl < 0) {
        expired++;
        continue;
      }
      const name = kv.key.toString();
      const bytes = kv.value.byteLength;
      keys.push({ name, modRevision: Number(kv.mod_revision), ttl, bytes, id: 0 });
      hash.add(kv.key, kv.value, ttl);
      if (ttl > 0) leases[String(ttl)] = (leases[String(ttl)] ?? 0) + 1;
      const size = bytes + kv.key.byteLength;
      totalBytes += size;
      if (!largest || size > largest.bytes) largest = { key: name, bytes: size };
      if (name.startsWith('/bootstrap/'))
        bootstrap.push({ id: 0, name, lease: ttl, bytes, value: Buffer.from(kv.value) });
    }
    opts.onProgress?.({
      phase: 'etcd',
      done: keys.length,
      total: 0,
      rows: 0,
      written: 0,
      alreadyThere: 0,
      bytesDone: totalBytes,
      bytesTotal: 0,
    });
  }
  // Row ids in etcd's modification order, after kine's compact_rev_key (row 1).
  [...keys]
    .sort((a, b) => a.modRevision - b.modRevision)
    .forEach((k, i) => {
      k.id = i + 2;
    });
  let token: EtcdSource['token'];
  if (opts.token) token = checkToken(bootstrap, opts.token);
  else if (bootstrap.length > 0)
    throw new K3sEtcdError(
      'migrate-token',
      `etcd holds K3s's bootstrap data (${bootstrap.map((b) => b.name).join(', ')}), sealed with the server token: give it (--token-file PATH, or --token-file - to read it from standard input) so it is checked before anything is written: K3s on SQLite must start with the token that decrypts it. Nothing was written.`,
    );
  else token = { found: false, note: 'no token given and no /bootstrap key in etcd' };
  const leasedKeys = keys.filter((k) => k.ttl > 0).length;
  return {
    revision,
    keys,
    skipped,
    expired,
    leases,
    leasedKeys,
    totalBytes,
    ...(largest ? { largest } : {}),
    bootstrapKeys: bootstrap.map((b) => b.name),
    sha256: hash.digest(),
    token,
  };
}
