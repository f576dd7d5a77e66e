/**
 * Real SQLite databases shaped as kine writes them, for migration tests: kine's exact DDL (the
 * current `name TEXT` and the older `name INTEGER` generation), and rows appended as kine's log
 * does (one row per write; `id` is the revision; creates, updates with old_value, tombstones,
 * re-creates, gap rows, compact_rev_key, /registry/health, TTL leases). The builder keeps its own
 * model of the latest live state, which tests compare the migration with. Written by sqlite3.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createCipheriv, createHash, pbkdf2Sync, randomBytes } from 'node:crypto';

export type NameType = 'TEXT' | 'INTEGER';

export function kineDdl(nameType: NameType): string {
  return `CREATE TABLE IF NOT EXISTS kine (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name ${nameType},
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
`;
}

const hex = (b: Uint8Array | null) =>
  b === null ? 'NULL' : `X'${Buffer.from(b).toString('hex')}'`;
const str = (s: string) => `'${s.replace(/'/g, "''")}'`;

interface KeyState {
  last: number;
  created: number;
  value: Uint8Array | null;
  deleted: boolean;
  lease: number;
}

/** Appends kine-shaped rows; `sql()` is the script, `live` the expected latest state. */
export class KineLog {
  private rev = 0;
  private readonly keys = new Map<string, KeyState>();
  private readonly stmts: string[] = [];

  private append(
    name: string,
    created: number,
    deleted: number,
    createRev: number,
    prevRev: number,
    lease: number,
    value: Uint8Array | null,
    oldValue: Uint8Array | null,
  ): number {
    this.rev++;
    this.stmts.push(
      `INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES(${this.rev}, ${str(name)}, ${created}, ${deleted}, ${createRev}, ${prevRev}, ${lease}, ${hex(value)}, ${hex(oldValue)});`,
    );
    return this.rev;
  }

  create(name: string, value: Uint8Array, lease = 0): this {
    const k = this.keys.get(name);
    if (k && !k.deleted) throw new Error(`${name} exists`);
    const id = this.append(name, 1, 0, 0, k?.last ?? 0, lease, value, null);
    this.keys.set(name, { last: id, created: id, value, deleted: false, lease });
    return this;
  }

  update(name: string, value: Uint8Array, lease?: number): this {
    const k = this.keys.get(name);
    if (!k || k.deleted) throw new Error(`${name} does not exist`);
    const l = lease ?? k.lease;
    const id = this.append(name, 0, 0, k.created, k.last, l, value, k.value);
    this.keys.set(name, { ...k, last: id, value, lease: l });
    return this;
  }

  delete(name: string): this {
    const k = this.keys.get(name);
    if (!k || k.deleted) throw new Error(`${name} does not exist`);
    const id = this.append(name, 0, 1, k.created, k.last, 0, null, k.value);
    this.keys.set(name, { ...k, last: id, value: null, deleted: true, lease: 0 });
    return this;
  }

  /** A gap fill row, as kine's Fill writes it. */
  gap(): this {
    this.append(`gap-${this.rev + 1}`, 0, 1, 0, 0, 0, null, null);
    return this;
  }

  /** kine's compaction: superseded rows and tombstones up to the current revision go. */
  compact(): this {
    const target = this.rev;
    this.stmts.push(
      `DELETE FROM kine WHERE id <= ${target} AND CAST(name AS TEXT) != 'compact_rev_key' AND (deleted = 1 OR id IN (SELECT prev_revision FROM kine WHERE prev_revision != 0));`,
    );
    if (this.keys.has('compact_rev_key')) {
      this.stmts.push(
        `UPDATE kine SET prev_revision = ${target} WHERE CAST(name AS TEXT) = 'compact_rev_key';`,
      );
    } else {
      const id = this.append('compact_rev_key', 1, 0, 0, target, 0, new Uint8Array(), null);
      this.keys.set('compact_rev_key', {
        last: id,
        created: id,
        value: new Uint8Array(),
        deleted: false,
        lease: 0,
      });
    }
    return this;
  }

  get revision(): number {
    return this.rev;
  }

  /** The SQL appended since the last call. */
  take(): string {
    return this.stmts.splice(0).join('\n');
  }

  /** The latest live state kine would list, without kine's internal rows. */
  live(): Map<string, { value: Uint8Array; lease: number }> {
    const out = new Map<string, { value: Uint8Array; lease: number }>();
    for (const [name, k] of this.keys) {
      if (k.deleted || !k.value) continue;
      if (/^(compact_rev_key|compact_rev_key_apiserver|\/registry\/health)$|^gap-/.test(name))
        continue;
      out.set(name, { value: k.value, lease: k.lease });
    }
    return out;
  }
}

/** Runs `sql` with sqlite3 on `db` (WAL mode, as kine uses). */
export function sqlite(db: string, sql: string): string {
  const r = spawnSync('sqlite3', [db], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr}`);
  return r.stdout;
}

/** A sqlite3 holding `db` open with automatic checkpoints off: what it writes stays in the WAL. */
export async function walWriter(db: string, sql: string): Promise<ChildProcessWithoutNullStreams> {
  const p = spawn('sqlite3', [db]);
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stdin.write(`PRAGMA wal_autocheckpoint=0;\n${sql}\nSELECT 'ready';\n`);
  const until = Date.now() + 15_000;
  while (!out.includes('ready')) {
    if (Date.now() > until) throw new Error(`sqlite3 never got ready: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return p;
}

/** K3s's bootstrap value for `plain` sealed with `token`, as pkg/cluster/encrypt.go does it. */
export function sealBootstrap(token: string, plain: string): { key: string; value: Buffer } {
  const secret = /::server:(.*)$/.exec(token)?.[1] ?? token;
  const salt = randomBytes(8).toString('hex');
  const key = pbkdf2Sync(secret, salt, 4096, 32, 'sha1');
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
  return {
    key: `/bootstrap/${createHash('sha256').update(secret).digest('hex').slice(0, 12)}`,
    value: Buffer.from(`${salt}:${Buffer.concat([nonce, body]).toString('base64')}`),
  };
}

/** Kubernetes' protobuf envelope: the `k8s\0` magic, then the message bytes. */
export function k8sProto(n: number): Buffer {
  return Buffer.concat([
    Buffer.from('k8s\0'),
    Buffer.from([0x0a, 0x0b]),
    randomBytes(16 + (n % 64)),
  ]);
}

/**
 * A cluster's state at a real size, as kine logs it: thousands of small objects, hot leases
 * churned for thousands of revisions, deletes and re-creates, and Helm release secrets of
 * 100-900 KiB side by side in revision order (more than one etcd request holds, and together
 * more than gRPC's 4 MiB reply limit). `flush` receives the SQL every few thousand rows.
 */
export function realSizeHistory(log: KineLog, flush: (sql: string) => void): void {
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  log.create('/registry/health', json({ health: 'true' }));
  for (let i = 0; i < 2000; i++) log.create(`/registry/pods/ns-${i % 25}/pod-${i}`, k8sProto(i));
  for (let i = 0; i < 1000; i++)
    log.create(`/registry/configmaps/ns-${i % 25}/cm-${i}`, json({ i, pad: 'x'.repeat(i % 900) }));
  flush(log.take());
  // Helm releases: eight revisions of one chart, 100-900 KiB each, one after the other.
  const kib = [900, 700, 100, 850, 300, 600, 800, 450];
  kib.forEach((k, v) =>
    log.create(`/registry/secrets/default/sh.helm.release.v1.app.v${v + 1}`, randomBytes(k * 1024)),
  );
  flush(log.take());
  for (let h = 0; h < 3; h++) log.create(`/registry/leases/kube-system/hot-${h}`, k8sProto(h));
  for (let r = 0; r < 3000; r++) {
    log.update(`/registry/leases/kube-system/hot-${r % 3}`, k8sProto(r));
    if (r % 1000 === 999) flush(log.take());
  }
  for (let i = 0; i < 2000; i += 7) log.delete(`/registry/pods/ns-${i % 25}/pod-${i}`);
  for (let i = 0; i < 2000; i += 14)
    log.create(`/registry/pods/ns-${i % 25}/pod-${i}`, k8sProto(i));
  // A release superseded (its old bytes stay in history only) and one deleted.
  log.update('/registry/secrets/default/sh.helm.release.v1.app.v2', randomBytes(650 * 1024));
  log.delete('/registry/secrets/default/sh.helm.release.v1.app.v3');
  flush(log.take());
}

/**
 * A kine database of about `bytes` bytes, built by sqlite3 itself in a few statements (seconds
 * per gigabyte): `live` small objects, `events` events created with a TTL and deleted again,
 * and then history only: `hot` node leases updated until the file is full, each row with a
 * value and its old_value as kine writes them (~1 KiB each). Under 1% of the rows are live.
 */
export function bigKineDb(
  db: string,
  opts: { bytes: number; live?: number; events?: number; hot?: number },
): { rows: number; live: number } {
  const live = opts.live ?? 3000;
  const events = opts.events ?? 2000;
  const hot = opts.hot ?? 40;
  const valueBytes = 950; // two rows (value + old_value) fill a 4 KiB page
  const updates = Math.max(hot, Math.ceil(opts.bytes / (2 * valueBytes + 150)));
  const seq = (n: number) =>
    `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${n})`;
  const cols =
    'id, name, created, deleted, create_revision, prev_revision, lease, value, old_value';
  const ev = live;
  const hotStart = live + 2 * events;
  sqlite(
    db,
    `PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
${kineDdl('TEXT')}
BEGIN;
${seq(live)} INSERT INTO kine(${cols})
  SELECT i, '/registry/configmaps/ns-' || (i % 20) || '/cm-' || i, 1, 0, 0, 0, 0,
         X'6B387300' || randomblob(300 + i % 500), NULL FROM c;
${seq(events)} INSERT INTO kine(${cols})
  SELECT ${ev} + i, '/registry/events/ns-' || (i % 20) || '/e-' || i, 1, 0, 0, 0, 3600,
         CAST('{"reason":"Pulled"}' AS BLOB), NULL FROM c;
${seq(events)} INSERT INTO kine(${cols})
  SELECT ${ev + events} + i, '/registry/events/ns-' || (i % 20) || '/e-' || i, 0, 1, ${ev} + i, ${ev} + i, 0,
         NULL, CAST('{"reason":"Pulled"}' AS BLOB) FROM c;
${seq(updates)} INSERT INTO kine(${cols})
  SELECT ${hotStart} + i, '/registry/leases/kube-node-lease/node-' || ((i - 1) % ${hot}),
         i <= ${hot}, 0, CASE WHEN i <= ${hot} THEN 0 ELSE ${hotStart} + 1 + (i - 1) % ${hot} END,
         CASE WHEN i <= ${hot} THEN 0 ELSE ${hotStart} + i - ${hot} END, 0,
         X'6B387300' || randomblob(${valueBytes - 4}),
         CASE WHEN i <= ${hot} THEN NULL ELSE X'6B387300' || randomblob(${valueBytes - 4}) END FROM c;
COMMIT;
PRAGMA journal_mode=WAL;`,
  );
  return { rows: hotStart + updates, live: live + hot };
}
