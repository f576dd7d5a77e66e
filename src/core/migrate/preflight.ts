/**
 * The preflight of a migration: what would be carried (keys by prefix, value kinds, leases per
 * TTL, the largest value, values too large for the target's request limit) and the SHA-256 over
 * the sorted (key, value) pairs that the verification compares with the target's. Values are
 * read key by key from the file and hashed as they come, never all held at once.
 */
import { createHash } from 'node:crypto';
import { CancelledError } from '../errors';
import {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  putCost,
  readValue,
  TXN_OVERHEAD,
  type KineScan,
  type KineSource,
} from './kine';
import { PhaseClock, type MigrationProgress } from './progress';

export type ValueKind = 'protobuf' | 'json' | 'encrypted' | 'empty' | 'other';

export function valueKind(v: Uint8Array): ValueKind {
  if (v.byteLength === 0) return 'empty';
  const head = Buffer.from(v.subarray(0, 8)).toString('latin1');
  if (head.startsWith('k8s:enc:')) return 'encrypted';
  if (head.startsWith('k8s\0')) return 'protobuf';
  if (head.startsWith('{') || head.startsWith('[')) return 'json';
  return 'other';
}

export interface KinePreflight {
  path: string;
  walFrames: number;
  nameType: string;
  integrity: string;
  rows: number;
  currentRevision: number;
  compactRevision: number;
  liveKeys: number;
  byPrefix: Record<string, number>;
  byKind: Record<ValueKind, number>;
  largest?: { key: string; bytes: number };
  /** TTL seconds → keys. */
  leases: Record<string, number>;
  bootstrapKeys: string[];
  /** Bytes of keys and values to write. */
  totalBytes: number;
  /** Keys too large for the target's request limit. */
  tooLarge: { key: string; bytes: number }[];
  /** SHA-256 over the sorted (key, value) pairs to be written (the verification compares it). */
  sha256: string;
}

/** `/registry/pods/ns/x` → `/registry/pods`; `/bootstrap/abc` → `/bootstrap`. */
export function prefixOf(name: string): string {
  const parts = name.split('/');
  return name.startsWith('/registry/')
    ? parts.slice(0, 3).join('/')
    : parts.slice(0, 2).join('/') || name;
}

/**
 * SHA-256 over (key, value) pairs fed in key order (byte order, as etcd returns them), each
 * length-prefixed: the fingerprint the source and the target are compared by. With `ttl` given
 * (the way back to SQLite, where the TTL is a column of the row), it is hashed after the value.
 */
export function pairsHasher(): {
  add(key: Uint8Array, value: Uint8Array, ttl?: number): void;
  digest(): string;
} {
  const h = createHash('sha256');
  const len = Buffer.alloc(8);
  return {
    add(key, value, ttl) {
      len.writeBigUInt64BE(BigInt(key.byteLength));
      h.update(len).update(key);
      len.writeBigUInt64BE(BigInt(value.byteLength));
      h.update(len).update(value);
      if (ttl !== undefined) {
        len.writeBigInt64BE(BigInt(ttl));
        h.update(len);
      }
    },
    digest: () => h.digest('hex'),
  };
}

/** SHA-256 over (key, value) pairs sorted by key (see pairsHasher). */
export function pairsHash(pairs: Iterable<{ key: string; value: Uint8Array }>): string {
  const sorted = [...pairs]
    .map((p) => ({ key: Buffer.from(p.key), value: p.value }))
    .sort((a, b) => Buffer.compare(a.key, b.key));
  const h = pairsHasher();
  for (const p of sorted) h.add(p.key, p.value);
  return h.digest();
}

/**
 * The preflight's figures over the keys to migrate; values are read key by key in key order and
 * hashed as they come (the SHA-256 the verification compares), never all held at once.
 */
export async function preflight(
  src: KineSource,
  scan: KineScan,
  maxRequestBytes = ETCD_DEFAULT_MAX_REQUEST_BYTES,
  opts: { signal?: AbortSignal; onProgress?(p: MigrationProgress): void } = {},
): Promise<KinePreflight> {
  const byPrefix: Record<string, number> = {};
  const byKind: Record<ValueKind, number> = {
    protobuf: 0,
    json: 0,
    encrypted: 0,
    empty: 0,
    other: 0,
  };
  const leases: Record<string, number> = {};
  let largest: { key: string; bytes: number } | undefined;
  const tooLarge: { key: string; bytes: number }[] = [];
  let totalBytes = 0;
  for (const r of scan.keys) {
    const p = prefixOf(r.name);
    byPrefix[p] = (byPrefix[p] ?? 0) + 1;
    if (r.lease > 0) leases[String(r.lease)] = (leases[String(r.lease)] ?? 0) + 1;
    const bytes = r.bytes + Buffer.byteLength(r.name);
    totalBytes += bytes;
    if (!largest || bytes > largest.bytes) largest = { key: r.name, bytes };
    if (putCost(r.name, r.bytes) + TXN_OVERHEAD > maxRequestBytes)
      tooLarge.push({ key: r.name, bytes });
  }
  const sorted = scan.keys
    .map((k) => ({ k, key: Buffer.from(k.name) }))
    .sort((a, b) => Buffer.compare(a.key, b.key));
  const hash = pairsHasher();
  const clock = new PhaseClock();
  let bytesDone = 0;
  for (let i = 0; i < sorted.length; i++) {
    const { k, key } = sorted[i]!;
    const value = readValue(src, k);
    byKind[valueKind(value)]++;
    hash.add(key, value);
    bytesDone += key.byteLength + value.byteLength;
    if (i % 256 === 255 || i === sorted.length - 1) {
      if (opts.signal?.aborted) throw new CancelledError('Reading');
      opts.onProgress?.({
        phase: 'hash',
        done: i + 1,
        total: sorted.length,
        rows: scan.rows,
        written: 0,
        alreadyThere: 0,
        bytesDone,
        bytesTotal: totalBytes,
        etaSec: clock.eta(bytesDone / Math.max(1, totalBytes)),
      });
      await new Promise((r) => setImmediate(r));
    }
  }
  return {
    path: src.path,
    walFrames: src.walFrames,
    nameType: src.nameType,
    integrity: 'ok',
    rows: scan.rows,
    currentRevision: scan.currentRevision,
    compactRevision: scan.compactRevision,
    liveKeys: scan.keys.length,
    byPrefix,
    byKind,
    ...(largest ? { largest } : {}),
    leases,
    bootstrapKeys: scan.keys.filter((r) => r.name.startsWith('/bootstrap/')).map((r) => r.name),
    tooLarge,
    totalBytes,
    sha256: hash.digest(),
  };
}
