/**
 * K3s's SQLite state as kine wrote it, read from disk page by page (./pager.ts, ./btree.ts: no
 * native module, so the VSIX works on every platform, and no copy of the file in memory, so a
 * multi-gigabyte state.db reads in bounded memory). One pass over the kine table in revision
 * order finds kine's own "latest row per name, not deleted" selection (keeping only the live
 * names: a name whose newest row is a tombstone is dropped as it is read); values are read
 * afterwards, key by key, when they are hashed and written. Both schema generations (`name
 * INTEGER` before kine v0.16.3, `name TEXT` since) are read, names as text.
 */
import { statSync } from 'node:fs';
import { CancelledError, K3sEtcdError } from '../errors';
import { CorruptError, findRow, RowRecord, scanTable, type Column } from './btree';
import { Pager } from './pager';
import { PhaseClock, type MigrationProgress } from './progress';

/** etcd's default --max-request-bytes (1.5 MiB): the largest proposal (one transaction) it takes. */
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** A transaction's own bytes beyond its operations (header, framing), with room to spare. */
export const TXN_OVERHEAD = 4096;

/**
 * What one create-only put costs in a transaction: the key three times (the compare, the put, and
 * the read-back in the transaction's else branch), the value, and the fields, lease and
 * framing of the three operations, generously (a unit test encodes real transactions with
 * etcd's own rpc.proto and holds every batch under the limit).
 */
export function putCost(name: string, valueBytes: number): number {
  return 3 * Buffer.byteLength(name) + valueBytes + 64;
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

const COLUMNS = [
  'id',
  'name',
  'created',
  'deleted',
  'create_revision',
  'prev_revision',
  'lease',
  'value',
  'old_value',
] as const;
type ColumnName = (typeof COLUMNS)[number];

export interface KineSource {
  path: string;
  pager: Pager;
  /** WAL frames applied (read from the log in place). */
  walFrames: number;
  /** The declared type of `name`: 'TEXT' (kine ≥ v0.16.3) or 'INTEGER' (older). */
  nameType: string;
  /** The kine table's root page and where each column is in its records. */
  root: number;
  cols: Record<ColumnName, number>;
  /** Sizes and modification times of the files read: a later run checks they did not change. */
  stamp: string;
  close(): void;
}

const damaged = (path: string, err: unknown) =>
  new K3sEtcdError(
    'migrate-source',
    `${path} is not a readable SQLite database (${(err as Error).message}). Copy state.db (with its -wal) again with K3s stopped (k3s-etcd k3s backup).`,
    { cause: err },
  );

/** `stat` of the database and its log, for telling whether they changed since they were read. */
function stampOf(path: string): string {
  const one = (p: string) => {
    try {
      const s = statSync(p);
      return `${s.size}@${s.mtimeMs}`;
    } catch {
      return '-';
    }
  };
  return `${one(path)} ${one(`${path}-wal`)}`;
}

/** A text column as a string; numbers as SQLite's CAST(x AS TEXT) writes them. */
function text(v: Column): string {
  if (v === null) return '';
  if (typeof v === 'number') return String(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
}

/** The column names of a CREATE TABLE statement, in order. */
function columnsOf(ddl: string): string[] {
  const body = ddl.slice(ddl.indexOf('(') + 1, ddl.lastIndexOf(')'));
  return body
    .split(',')
    .map((d) => /^\s*["`[]?(\w+)/.exec(d)?.[1]?.toLowerCase() ?? '')
    .filter((c) => c !== '' && !/^(primary|unique|check|foreign|constraint)$/.test(c));
}

/** Opens `path` with the `-wal` beside it applied; the files are only read. */
export async function openKine(path: string): Promise<KineSource> {
  const stamp = stampOf(path);
  let pager: Pager;
  try {
    pager = Pager.open(path);
  } catch (err) {
    if (err instanceof K3sEtcdError) throw err;
    if ((err as NodeJS.ErrnoException).code)
      throw new K3sEtcdError('usage', `Cannot read ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    throw damaged(path, err);
  }
  try {
    if (pager.encoding !== 1)
      throw new Error(`text encoding ${pager.encoding} (UTF-16): kine writes UTF-8`);
    let ddl = '';
    let root = 0;
    await scanTable(pager, 1, (row) => {
      const r = new RowRecord(pager, row);
      if (text(r.get(0)) === 'table' && text(r.get(1)) === 'kine') {
        root = Number(r.get(3));
        ddl = text(r.get(4));
      }
    });
    const names = columnsOf(ddl);
    const missing = COLUMNS.filter((c) => !names.includes(c));
    if (!ddl || missing.length > 0) {
      throw new K3sEtcdError(
        'migrate-source',
        ddl
          ? `${path}: the kine table lacks ${missing.join(', ')}: not a schema kine writes.`
          : `${path} has no kine table: not K3s's SQLite state (state.db).`,
      );
    }
    const cols = Object.fromEntries(
      COLUMNS.map((c) => [c, names.indexOf(c)]),
    ) as KineSource['cols'];
    const nameType = /\bname\s+(\w+)/i.exec(ddl)?.[1]?.toUpperCase() ?? 'TEXT';
    return {
      path,
      pager,
      walFrames: pager.walFrames,
      nameType,
      root,
      cols,
      stamp,
      close: () => pager.close(),
    };
  } catch (err) {
    pager.close();
    if (err instanceof K3sEtcdError) throw err;
    throw damaged(path, err);
  }
}

/** A key to migrate: its newest row, without the value (read when needed). */
export interface KineKey {
  /** Kine's revision of this row. */
  id: number;
  name: string;
  /** TTL in seconds (kine stores TTLs, not lease IDs); 0 = none. */
  lease: number;
  /** Bytes of the value. */
  bytes: number;
}

export interface KineRow extends KineKey {
  value: Uint8Array;
}

export interface KineScan {
  /** The latest row of every name that is not deleted, kine's internal rows left out, by revision. */
  keys: KineKey[];
  rows: number;
  currentRevision: number;
  compactRevision: number;
  /** B-tree pages of the kine table read (structure checked). */
  pages: number;
}

const numberOf = (v: Column) => (typeof v === 'number' ? v : v === null ? 0 : Number(text(v)) || 0);

/**
 * One pass over the kine table in revision order: kine's latest-row selection, the history's
 * figures, the B-tree's structure checked on the way.
 */
export async function scanKine(
  src: KineSource,
  opts: { signal?: AbortSignal; onProgress?(p: MigrationProgress): void } = {},
): Promise<KineScan> {
  const { pager, cols } = src;
  const live = new Map<string, KineKey>();
  let rows = 0;
  let last = 0;
  let compactRevision = 0;
  const clock = new PhaseClock();
  const total = pager.pageCount;
  const report = () => {
    const f = Math.min(1, pager.pagesRead / Math.max(1, total));
    opts.onProgress?.({
      phase: 'read',
      done: Math.min(pager.pagesRead, total),
      total,
      rows,
      written: 0,
      alreadyThere: 0,
      bytesDone: Math.min(pager.pagesRead, total) * pager.pageSize,
      bytesTotal: total * pager.pageSize,
      etaSec: clock.eta(f),
    });
  };
  let pages: number;
  try {
    ({ pages } = await scanTable(
      pager,
      src.root,
      (row) => {
        rows++;
        last = row.rowid;
        const r = new RowRecord(pager, row);
        const name = text(r.get(cols.name));
        if (isInternalKey(name)) {
          if (name === 'compact_rev_key') compactRevision = numberOf(r.get(cols.prev_revision));
          return;
        }
        if (numberOf(r.get(cols.deleted)) !== 0) {
          live.delete(name);
          return;
        }
        const value = r.get(cols.value, 0);
        live.set(name, {
          id: row.rowid,
          name,
          lease: numberOf(r.get(cols.lease)),
          bytes: typeof value === 'number' ? String(value).length : r.length(cols.value),
        });
      },
      {
        pause: async () => {
          if (opts.signal?.aborted) throw new CancelledReading();
          report();
          await new Promise((r) => setImmediate(r));
        },
      },
    ));
  } catch (err) {
    if (err instanceof CancelledReading) throw new CancelledError('Reading');
    if (err instanceof CorruptError)
      throw new K3sEtcdError(
        'migrate-source',
        `${src.path} is damaged: ${err.message}. Copy state.db (with its -wal) again with K3s stopped (k3s-etcd k3s backup).`,
        { cause: err },
      );
    throw err;
  }
  report();
  const keys = [...live.values()].sort((a, b) => a.id - b.id);
  return { keys, rows, currentRevision: last, compactRevision, pages };
}

class CancelledReading extends Error {}

/** The value of `key`'s row, read from disk (its name checked against the row's). */
export function readValue(src: KineSource, key: KineKey): Uint8Array {
  const row = findRow(src.pager, src.root, key.id);
  const r = row && new RowRecord(src.pager, row);
  if (!r || text(r.get(src.cols.name)) !== key.name) {
    throw new K3sEtcdError(
      'migrate-source',
      `${src.path} changed while it was read (row ${key.id} no longer holds ${key.name}): stop K3s and read it again.`,
    );
  }
  const v = r.get(src.cols.value);
  return v === null ? new Uint8Array() : typeof v === 'number' ? Buffer.from(String(v)) : v;
}

/** The rows of `keys` with their values (small sets: the bootstrap key, tests). */
export function withValues(src: KineSource, keys: readonly KineKey[]): KineRow[] {
  return keys.map((k) => ({ ...k, value: readValue(src, k) }));
}

/** Kine's selection with the values (small databases: tests, the token check). */
export async function latestRows(src: KineSource): Promise<KineRow[]> {
  return withValues(src, (await scanKine(src)).keys);
}
