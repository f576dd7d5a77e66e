/**
 * The way back: the external etcd into a NEW kine database, as kine itself would hold it, then
 * proven by reading it back with this folder's own read-only SQLite reader.
 *
 * What kine would hold (kine: pkg/drivers/sqlite/sqlite.go, pkg/logstructured/sqllog): its
 * table and indexes exactly; row 1 `compact_rev_key` as kine's first start appends it (a create
 * with an empty value, compacted revision 0 in `prev_revision`); then one create row per live
 * key in etcd's modification order, as kine's Insert writes a first create: created=1,
 * deleted=0, create_revision=0 (the row's own id is its create revision), prev_revision=0,
 * lease=the TTL in seconds, the value, old_value NULL (a create has no previous value). The
 * AUTOINCREMENT counter (`sqlite_sequence`) ends at the last row; the file is left in WAL mode,
 * as kine opens it.
 *
 * Written by Debian's `sqlite3` (the one kine's format is certain to come from: real SQLite),
 * SQL streamed through its stdin with the values as X'hex' blobs, a transaction per batch, the
 * stream paused while sqlite3 catches up: memory stays at a batch however large etcd is.
 * sql.js would hold the whole database in memory, and a native module would break the VSIX on
 * other platforms. The file is `<target>.part` until it is verified, then renamed.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { CancelledError, K3sEtcdError } from '../errors';
import { carriedPages, type EtcdSource } from './etcdSource';
import { openKine, readValue, scanKine } from './kine';
import { pairsHasher } from './preflight';
import { PhaseClock, type MigrationProgress } from './progress';

/** Kine's SQLite schema, statement for statement (kine v0.16.4, pkg/drivers/sqlite/sqlite.go). */
export const KINE_SCHEMA = `CREATE TABLE IF NOT EXISTS kine
  (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    created INTEGER,
    deleted INTEGER,
    create_revision INTEGER,
    prev_revision INTEGER,
    lease INTEGER,
    value BLOB,
    old_value BLOB
  );
CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name);
CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id);
CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted);
CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision);
CREATE INDEX IF NOT EXISTS kine_id_compact_rev_key_with_prev_revision_index ON kine(id, name, prev_revision) WHERE name != 'compact_rev_key' AND prev_revision != 0;
`;

/** Rows and SQL bytes per transaction. */
const BATCH_ROWS = 1000;
const BATCH_SQL_BYTES = 16 * 1024 * 1024;

const hex = (b: Uint8Array) =>
  `X'${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}'`;

/** One create row as kine's Insert writes it (see the file's comment). */
export function createRowSql(id: number, name: Uint8Array, value: Uint8Array, ttl: number): string {
  return `INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES(${id}, CAST(${hex(name)} AS TEXT), 1, 0, 0, 0, ${ttl}, ${hex(value)}, NULL);\n`;
}

/** Refuses a target that exists (or a WAL of one): a way back never overwrites a state. */
export function requireNewTarget(target: string): void {
  for (const p of [target, `${target}-wal`, `${target}-shm`]) {
    if (existsSync(p))
      throw new K3sEtcdError(
        'migrate-target',
        `${p} exists: the way back writes a new database and never overwrites one. Move it aside (for example to ${p}.old) and run again. Nothing was written.`,
      );
  }
  if (!existsSync(dirname(target)))
    throw new K3sEtcdError(
      'usage',
      `${dirname(target)} does not exist: create the directory for ${target} first.`,
    );
}

/** sqlite3 reading SQL from its stdin; `send` waits while its pipe is full, and fails if it died. */
function sqliteWriter(file: string) {
  const p: ChildProcessWithoutNullStreams = spawn('sqlite3', ['-bail', file], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  p.stdout.resume();
  p.stdin.on('error', () => undefined); // EPIPE: reported by `exited` with sqlite3's words
  const exited = new Promise<number>((resolve, reject) => {
    p.once('error', (err) =>
      reject(
        new K3sEtcdError(
          'migrate-target',
          `Cannot run sqlite3 (${err.message}): install it (Debian: apt-get install sqlite3).`,
          { cause: err },
        ),
      ),
    );
    p.once('exit', (code) => resolve(code ?? 1));
  });
  const failed = () =>
    new K3sEtcdError(
      'migrate-target',
      `sqlite3 stopped while writing ${file}: ${stderr.trim() || 'no message'}`,
    );
  let dead = false;
  void exited.then(
    () => (dead = true),
    () => (dead = true),
  );
  return {
    async send(sql: string): Promise<void> {
      if (dead) throw failed();
      if (!p.stdin.write(sql)) {
        const drained = new Promise<void>((r) => p.stdin.once('drain', () => r()));
        await Promise.race([drained, exited.then(() => undefined)]);
        if (dead) throw failed();
      }
    },
    async end(): Promise<void> {
      p.stdin.end();
      if ((await exited) !== 0) throw failed();
    },
    kill: () => {
      if (!dead) p.kill('SIGKILL');
    },
  };
}

export interface SqliteWriteResult {
  written: number;
  bytes: number;
}

/**
 * Writes `src`'s keys into `part` (a new file): etcd read again in pages at `src.revision`, a
 * row per key with the id the read gave it.
 */
async function fill(
  client: Etcd3,
  src: EtcdSource,
  part: string,
  opts: { signal?: AbortSignal; onProgress?(p: MigrationProgress): void },
): Promise<SqliteWriteResult> {
  const want = new Map(src.keys.map((k) => [k.name, k]));
  const w = sqliteWriter(part);
  const clock = new PhaseClock();
  let written = 0;
  let bytes = 0;
  try {
    // journal off while loading a file nobody else opens yet (.part, verified before it is
    // renamed); WAL at the end, as kine keeps it.
    await w.send(`PRAGMA journal_mode=OFF;\nPRAGMA synchronous=OFF;\n${KINE_SCHEMA}`);
    await w.send(
      `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES('compact_rev_key', 1, 0, 0, 0, 0, X'', NULL);\nBEGIN;\n`,
    );
    let rows = 0;
    let sqlBytes = 0;
    for await (const page of carriedPages(client, {
      revision: src.revision,
      ...(opts.signal ? { signal: opts.signal } : {}),
    })) {
      if (opts.signal?.aborted) throw new CancelledError('Writing state.db');
      for (const { kv } of page.kvs) {
        const k = want.get(kv.key.toString());
        if (!k) continue; // a lease that ended during the first read
        const sql = createRowSql(k.id, kv.key, kv.value, k.ttl);
        if (rows >= BATCH_ROWS || sqlBytes + sql.length > BATCH_SQL_BYTES) {
          await w.send('COMMIT;\nBEGIN;\n');
          rows = 0;
          sqlBytes = 0;
        }
        await w.send(sql);
        rows++;
        sqlBytes += sql.length;
        written++;
        bytes += kv.key.byteLength + kv.value.byteLength;
      }
      opts.onProgress?.({
        phase: 'fill',
        done: written,
        total: src.keys.length,
        rows: 0,
        written,
        alreadyThere: 0,
        bytesDone: bytes,
        bytesTotal: src.totalBytes,
        etaSec: clock.eta(bytes / Math.max(1, src.totalBytes)),
      });
    }
    await w.send('COMMIT;\nPRAGMA journal_mode=WAL;\n');
    await w.end();
    return { written, bytes };
  } catch (err) {
    w.kill();
    throw err;
  }
}

export interface KineVerification {
  expectedKeys: number;
  foundKeys: number;
  leasedExpected: number;
  leasedFound: number;
  sourceSha256: string;
  targetSha256: string;
  /** The rows are in etcd's modification order. */
  ordered: boolean;
  ok: boolean;
}

/**
 * Kine's live selection of `file` (latest row per name, not deleted, kine's own rows left out),
 * read by this folder's reader: count, leased count, SHA-256 over (key, value, TTL) in key
 * order, and the rows' order, compared with what etcd held.
 */
export async function verifyKineFile(file: string, src: EtcdSource): Promise<KineVerification> {
  const db = await openKine(file);
  try {
    const scan = await scanKine(db);
    const sorted = scan.keys
      .map((k) => ({ k, key: Buffer.from(k.name) }))
      .sort((a, b) => Buffer.compare(a.key, b.key));
    const hash = pairsHasher();
    for (const { k, key } of sorted) hash.add(key, readValue(db, k), k.lease);
    const byRevision = [...src.keys].sort((a, b) => a.id - b.id).map((k) => k.name);
    const ordered =
      scan.keys.length === byRevision.length && scan.keys.every((k, i) => k.name === byRevision[i]);
    const targetSha256 = hash.digest();
    const leasedFound = scan.keys.filter((k) => k.lease > 0).length;
    return {
      expectedKeys: src.keys.length,
      foundKeys: scan.keys.length,
      leasedExpected: src.leasedKeys,
      leasedFound,
      sourceSha256: src.sha256,
      targetSha256,
      ordered,
      ok:
        ordered &&
        scan.keys.length === src.keys.length &&
        leasedFound === src.leasedKeys &&
        targetSha256 === src.sha256,
    };
  } finally {
    db.close();
  }
}

export interface ToSqliteResult {
  target: string;
  write: SqliteWriteResult;
  verify: KineVerification;
  /** Where the file is: `target` when verified, `<target>.part` (kept to inspect) when not. */
  file: string;
  fileBytes: number;
  ms: number;
}

/**
 * etcd → `target`: refused if the target exists; written to `<target>.part`, verified, then
 * renamed. A failed verification keeps the `.part` and says so.
 */
export async function migrateToSqlite(
  client: Etcd3,
  src: EtcdSource,
  target: string,
  opts: { signal?: AbortSignal; onProgress?(p: MigrationProgress): void } = {},
): Promise<ToSqliteResult> {
  requireNewTarget(target);
  const t0 = performance.now();
  const part = `${target}.part`;
  const clean = () =>
    Promise.all(['', '-wal', '-shm', '-journal'].map((s) => rm(`${part}${s}`, { force: true })));
  await clean(); // an interrupted run's leftover: ours to replace
  let write: SqliteWriteResult;
  try {
    // The file holds K3s's secrets: readable by its owner only, as kine's db directory (0700).
    // sqlite3 takes an empty file as a new database, and gives its WAL the file's mode.
    await writeFile(part, '', { mode: 0o600, flag: 'wx' });
    write = await fill(client, src, part, opts);
  } catch (err) {
    await clean();
    throw err;
  }
  opts.onProgress?.({
    phase: 'verify',
    done: 0,
    total: src.keys.length,
    rows: 0,
    written: write.written,
    alreadyThere: 0,
    bytesDone: 0,
    bytesTotal: 0,
  });
  const verify = await verifyKineFile(part, src);
  let file = part;
  if (verify.ok) {
    requireNewTarget(target); // nobody put one there meanwhile
    await rename(part, target);
    file = target;
  }
  return {
    target,
    write,
    verify,
    file,
    fileBytes: (await stat(file)).size,
    ms: performance.now() - t0,
  };
}
