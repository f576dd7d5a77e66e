/**
 * The migration's own SQLite reader (src/core/migrate/pager.ts, btree.ts) against SQLite itself:
 * kine's selection as the sqlite3 CLI computes it must be what the reader finds, row for row and
 * byte for byte, for every page size, with auto_vacuum's pointer-map pages, with values that
 * spill into overflow chains of every length, and with rows still only in the WAL. A damaged
 * B-tree is refused with what is wrong, not read wrong.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isInternalKey, latestRows, openKine, scanKine } from '../../src/core/migrate/kine';
import { KineLog, k8sProto, kineDdl, sqlite, walWriter } from '../../scripts/harness/kineFixture';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';

/** Kine's selection computed by SQLite: id, name, lease, value (hex). */
function sqliteSelection(db: string): { id: number; name: string; lease: number; value: string }[] {
  const out = sqlite(
    db,
    `.mode list
SELECT k.id, hex(CAST(k.name AS TEXT)), k.lease, hex(k.value)
  FROM kine k JOIN (SELECT MAX(id) AS id FROM kine GROUP BY name) m ON k.id = m.id
 WHERE k.deleted = 0 ORDER BY k.id;`,
  );
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, name, lease, value] = l.split('|');
      return {
        id: Number(id),
        name: Buffer.from(name!, 'hex').toString(),
        lease: Number(lease),
        value: value!.toLowerCase(),
      };
    })
    .filter((r) => !isInternalKey(r.name));
}

/** A churned history with values of every size, from empty to several overflow pages. */
function churn(log: KineLog, flush: (sql: string) => void, kind = 'things'): void {
  const key = (i: number) => `/registry/${kind}/ns-${i % 7}/t-${i}`;
  const sizes = [0, 1, 100, 480, 1000, 4000, 4100, 9000, 20_000, 70_000, 200_000];
  for (let i = 0; i < 400; i++)
    log.create(key(i), randomBytes(sizes[i % sizes.length]!), i % 13 ? 0 : 60);
  for (let r = 0; r < 600; r++) log.update(key(r % 400), k8sProto(r));
  for (let i = 0; i < 400; i += 3) log.delete(key(i));
  for (let i = 0; i < 400; i += 9) log.create(key(i), randomBytes(5000));
  log.gap();
  log.compact();
  flush(log.take());
}

describe("the migration's SQLite reader, against SQLite", () => {
  let dir = '';
  before(async () => {
    dir = await makeTempDir('k3s-etcd-kine-reader-');
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  const layouts: [string, string][] = [
    ['512-byte pages', 'PRAGMA page_size=512;'],
    ['4 KiB pages (default)', ''],
    ['64 KiB pages', 'PRAGMA page_size=65536;'],
    ['auto_vacuum=FULL (pointer-map pages)', 'PRAGMA auto_vacuum=FULL;'],
  ];
  for (const [label, pragma] of layouts) {
    it(`finds what SQLite finds, byte for byte: ${label}`, async () => {
      const db = join(dir, `${label.replace(/\W+/g, '-')}.db`);
      sqlite(db, `${pragma}\nPRAGMA journal_mode=WAL;\n${kineDdl('INTEGER')}`);
      churn(new KineLog(), (sql) => sqlite(db, `BEGIN;\n${sql}\nCOMMIT;`));
      const want = sqliteSelection(db);
      const src = await openKine(db);
      try {
        const got = await latestRows(src);
        assert.equal(got.length, want.length);
        got.forEach((r, i) => {
          const w = want[i]!;
          assert.deepEqual([r.id, r.name, r.lease], [w.id, w.name, w.lease]);
          assert.equal(Buffer.from(r.value).toString('hex'), w.value, `${r.name}: value`);
        });
      } finally {
        src.close();
      }
    });
  }

  it('reads rows still only in the WAL, overflow pages included, as SQLite does', async () => {
    const db = join(dir, 'wal-only.db');
    sqlite(db, `PRAGMA journal_mode=WAL;\n${kineDdl('TEXT')}`);
    const log = new KineLog();
    churn(log, (sql) => sqlite(db, `BEGIN;\n${sql}\nCOMMIT;`));
    let later = '';
    churn(log, (sql) => (later = sql), 'later');
    const writer = await walWriter(db, `BEGIN;\n${later}\nCOMMIT;`);
    try {
      const want = sqliteSelection(db);
      const src = await openKine(db);
      try {
        assert.ok(src.walFrames > 0);
        const got = await latestRows(src);
        assert.deepEqual(
          got.map((r) => [r.id, r.name, Buffer.from(r.value).toString('hex')]),
          want.map((w) => [w.id, w.name, w.value]),
        );
      } finally {
        src.close();
      }
    } finally {
      writer.stdin.end();
      await new Promise((r) => writer.once('exit', r));
    }
  });

  it('a damaged B-tree is refused with what is wrong', async () => {
    const db = join(dir, 'damaged.db');
    sqlite(db, `${kineDdl('TEXT')}`);
    churn(new KineLog(), (sql) => sqlite(db, `BEGIN;\n${sql}\nCOMMIT;`));
    const root = Number(sqlite(db, "SELECT rootpage FROM sqlite_master WHERE name='kine';"));
    // The table's root page claims to be an index page.
    const f = await open(db, 'r+');
    await f.write(Buffer.from([0x0a]), 0, 1, (root - 1) * 4096);
    await f.close();
    const src = await openKine(db);
    try {
      await assert.rejects(
        scanKine(src),
        /damaged\.db is damaged: page \d+ is not a table B-tree page \(type 10\)\. Copy state\.db/,
      );
    } finally {
      src.close();
    }
  });
});
