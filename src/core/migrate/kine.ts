/**
 * K3s's SQLite state as kine wrote it, read with SQLite compiled to WebAssembly (sql.js: no
 * native module, so the VSIX works on every platform). The preflight checks integrity and the
 * schema (both `name INTEGER` and `name TEXT` generations; names are read as text), and counts
 * what a migration would carry: kine's own "latest row per name, not deleted" selection, in
 * revision order, without kine's internal rows.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Database, SqlJsStatic } from 'sql.js';
import { K3sEtcdError } from '../errors';
import { applyWal } from './wal';

/** etcd's default --max-request-bytes (1.5 MiB): the largest proposal (one transaction) it takes. */
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** A transaction's own bytes beyond its operations (header, framing), with room to spare. */
export const TXN_OVERHEAD = 4096;

/**
 * What one create-only put costs in a transaction: the key twice (the compare and the put), the
 * value, and the fields and framing of both operations, generously.
 */
export function putCost(name: string, valueBytes: number): number {
  return 2 * Buffer.byteLength(name) + valueBytes + 64;
}

/** Kine's own rows, never carried. */
export function isInternalKey(name: string): boolean {
  return (
    name === 'compact_rev_key' ||
    name === 'compact_rev_key_apiserver' ||
    name === '/registry/health' ||
    name.startsWith('gap-')
  );
}

let sqlJs: Promise<SqlJsStatic> | undefined;

/** sql.js with its WebAssembly: beside the bundle (dist/), or from node_modules in development. */
function loadSqlJs(): Promise<SqlJsStatic> {
  sqlJs ??= (async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const init = require('sql.js') as (cfg: { wasmBinary: ArrayBuffer }) => Promise<SqlJsStatic>;
    // dist/sql-wasm.wasm beside the bundle; in development, sql.js's own from node_modules.
    const candidates = [
      join(__dirname, 'sql-wasm.wasm'),
      join(__dirname, '..', '..', '..', 'node_modules', 'sql.js', 'dist', 'sql-wasm.wasm'),
    ];
    const wasm = await readFile(candidates.find((c) => existsSync(c)) ?? (candidates[0] as string));
    return init({
      wasmBinary: wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength),
    });
  })();
  return sqlJs;
}

export interface KineSource {
  db: Database;
  path: string;
  /** WAL frames applied in memory. */
  walFrames: number;
  /** The declared type of `name`: 'TEXT' (kine ≥ v0.16.3) or 'INTEGER' (older). */
  nameType: string;
  close(): void;
}

/** Opens `path` with the `-wal` beside it applied; the files are only read. */
export async function openKine(path: string): Promise<KineSource> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new K3sEtcdError('usage', `Cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const wal = await readFile(`${path}-wal`).catch(() => undefined);
  const applied = applyWal(new Uint8Array(bytes), wal ? new Uint8Array(wal) : undefined);
  const SQL = await loadSqlJs();
  let db: Database;
  try {
    db = new SQL.Database(applied.db);
    db.exec('SELECT count(*) FROM sqlite_master');
  } catch (err) {
    throw new K3sEtcdError(
      'migrate-source',
      `${path} is not a readable SQLite database (${(err as Error).message}).`,
      { cause: err },
    );
  }
  const ddl = String(
    db.exec("SELECT sql FROM sqlite_master WHERE type='table' AND name='kine'")[0]
      ?.values[0]?.[0] ?? '',
  );
  const cols = [
    'id',
    'name',
    'created',
    'deleted',
    'create_revision',
    'prev_revision',
    'lease',
    'value',
    'old_value',
  ];
  const missing = cols.filter((c) => !new RegExp(`\\b${c}\\b`, 'i').test(ddl));
  if (!ddl || missing.length > 0) {
    db.close();
    throw new K3sEtcdError(
      'migrate-source',
      ddl
        ? `${path}: the kine table lacks ${missing.join(', ')}: not a schema kine writes.`
        : `${path} has no kine table: not K3s's SQLite state (state.db).`,
    );
  }
  const nameType = /\bname\s+(\w+)/i.exec(ddl)?.[1]?.toUpperCase() ?? 'TEXT';
  return { db, path, walFrames: applied.frames, nameType, close: () => db.close() };
}

export interface KineRow {
  /** Kine's revision of this row. */
  id: number;
  name: string;
  /** TTL in seconds (kine stores TTLs, not lease IDs); 0 = none. */
  lease: number;
  value: Uint8Array;
}

/** The latest row of every name that is not deleted, kine's internal rows left out, by revision. */
export function latestRows(src: KineSource): KineRow[] {
  const stmt = src.db.prepare(
    `SELECT k.id, CAST(k.name AS TEXT), k.lease, k.value
       FROM kine k JOIN (SELECT MAX(id) AS id FROM kine GROUP BY name) m ON k.id = m.id
      WHERE k.deleted = 0
      ORDER BY k.id`,
  );
  const rows: KineRow[] = [];
  try {
    while (stmt.step()) {
      const [id, name, lease, value] = stmt.get() as [
        number,
        string,
        number | null,
        Uint8Array | string | null,
      ];
      if (isInternalKey(name)) continue;
      rows.push({
        id,
        name,
        lease: lease ?? 0,
        value:
          value === null
            ? new Uint8Array()
            : typeof value === 'string'
              ? Buffer.from(value)
              : value,
      });
    }
  } finally {
    stmt.free();
  }
  return rows;
}

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
 * length-prefixed: the fingerprint the source and the target are compared by.
 */
export function pairsHasher(): { add(key: Uint8Array, value: Uint8Array): void; digest(): string } {
  const h = createHash('sha256');
  const len = Buffer.alloc(8);
  return {
    add(key, value) {
      len.writeBigUInt64BE(BigInt(key.byteLength));
      h.update(len).update(key);
      len.writeBigUInt64BE(BigInt(value.byteLength));
      h.update(len).update(value);
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

export function preflight(
  src: KineSource,
  rows: readonly KineRow[],
  maxRequestBytes = ETCD_DEFAULT_MAX_REQUEST_BYTES,
): KinePreflight {
  const one = (sql: string) => src.db.exec(sql)[0]?.values[0]?.[0];
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
  for (const r of rows) {
    const p = prefixOf(r.name);
    byPrefix[p] = (byPrefix[p] ?? 0) + 1;
    byKind[valueKind(r.value)]++;
    if (r.lease > 0) leases[String(r.lease)] = (leases[String(r.lease)] ?? 0) + 1;
    const bytes = r.value.byteLength + Buffer.byteLength(r.name);
    totalBytes += bytes;
    if (!largest || bytes > largest.bytes) largest = { key: r.name, bytes };
    if (putCost(r.name, r.value.byteLength) + TXN_OVERHEAD > maxRequestBytes)
      tooLarge.push({ key: r.name, bytes });
  }
  return {
    path: src.path,
    walFrames: src.walFrames,
    nameType: src.nameType,
    integrity: String(one('PRAGMA integrity_check') ?? 'unknown'),
    rows: Number(one('SELECT count(*) FROM kine') ?? 0),
    currentRevision: Number(one('SELECT max(id) FROM kine') ?? 0),
    compactRevision: Number(
      one(
        "SELECT prev_revision FROM kine WHERE CAST(name AS TEXT) = 'compact_rev_key' ORDER BY id DESC LIMIT 1",
      ) ?? 0,
    ),
    liveKeys: rows.length,
    byPrefix,
    byKind,
    ...(largest ? { largest } : {}),
    leases,
    bootstrapKeys: rows.filter((r) => r.name.startsWith('/bootstrap/')).map((r) => r.name),
    tooLarge,
    totalBytes,
    sha256: pairsHash(rows.map((r) => ({ key: r.name, value: r.value }))),
  };
}
