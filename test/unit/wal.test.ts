import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanTable } from '../../src/core/migrate/btree';
import { Pager, walIndex } from '../../src/core/migrate/pager';
import { makeTempDir, removeTempDir } from '../../scripts/harness/processes';

/** SQLite's WAL checksum, big-endian words (magic 0x377f0683). */
function sum(data: Buffer, s: [number, number]): [number, number] {
  let [s0, s1] = s;
  for (let i = 0; i < data.length; i += 8) {
    s0 = (s0 + data.readUInt32BE(i) + s1) >>> 0;
    s1 = (s1 + data.readUInt32BE(i + 4) + s0) >>> 0;
  }
  return [s0, s1];
}

/** A WAL whose header and frames carry correct salts and checksums, as SQLite writes them. */
function wal(
  pageSize: number,
  frames: Array<{ page: number; commit: number; fill: number }>,
): Buffer {
  const header = Buffer.alloc(32);
  header.writeUInt32BE(0x377f0683, 0);
  header.writeUInt32BE(3007000, 4);
  header.writeUInt32BE(pageSize === 65536 ? 1 : pageSize, 8);
  header.writeUInt32BE(0, 12);
  header.writeUInt32BE(0x11111111, 16);
  header.writeUInt32BE(0x22222222, 20);
  let s = sum(header.subarray(0, 24), [0, 0]);
  header.writeUInt32BE(s[0], 24);
  header.writeUInt32BE(s[1], 28);
  const parts = [header];
  for (const f of frames) {
    const fh = Buffer.alloc(24);
    fh.writeUInt32BE(f.page, 0);
    fh.writeUInt32BE(f.commit, 4);
    fh.writeUInt32BE(0x11111111, 8);
    fh.writeUInt32BE(0x22222222, 12);
    const body = Buffer.alloc(pageSize, f.fill);
    s = sum(fh.subarray(0, 8), s);
    s = sum(body, s);
    fh.writeUInt32BE(s[0], 16);
    fh.writeUInt32BE(s[1], 20);
    parts.push(fh, body);
  }
  return Buffer.concat(parts);
}

/** Indexes `log` as the pager does, for a database file of `dbBytes` bytes. */
const index = (log: Buffer, dbBytes: number) =>
  walIndex((o, n) => log.subarray(o, o + n), log.byteLength, dbBytes);

describe('WAL read in place', () => {
  it('indexes committed frames, growing the database only by pages the log wrote', () => {
    const log = wal(512, [
      { page: 2, commit: 0, fill: 7 },
      { page: 3, commit: 3, fill: 9 },
      { page: 1, commit: 0, fill: 5 }, // after the last commit: ignored
    ]);
    const r = index(log, 2 * 512);
    assert.equal(r.frames, 2);
    assert.equal(r.dbPages, 3);
    assert.deepEqual([...r.pages.keys()].sort(), [2, 3]);
    assert.equal(log[r.pages.get(2)!], 7);
    assert.equal(log[r.pages.get(3)!], 9);
  });

  it('a later commit of the same page wins; a frame with a broken checksum ends the log', () => {
    const log = wal(512, [
      { page: 2, commit: 2, fill: 7 },
      { page: 2, commit: 2, fill: 8 },
      { page: 2, commit: 2, fill: 9 },
    ]);
    log.writeUInt8(log.readUInt8(32 + 2 * (24 + 512) + 24) ^ 1, 32 + 2 * (24 + 512) + 24); // the third frame's page
    const r = index(log, 2 * 512);
    assert.equal(r.frames, 2);
    assert.equal(log[r.pages.get(2)!], 8);
  });

  it('refuses a 568-byte log that claims a 1 GiB database instead of believing it', () => {
    const log = wal(512, [{ page: 1, commit: 2 ** 21, fill: 0 }]);
    assert.equal(log.length, 568);
    assert.throws(
      () => index(log, 512),
      /says the database has 2097152 pages of 512 bytes, but the database file and the log hold at most 2/,
    );
  });

  it('refuses a log frame naming a page past the real files, which would size the database by it', () => {
    const huge = 0xfffffff0;
    const log = wal(512, [{ page: huge, commit: huge, fill: 0 }]);
    assert.equal(log.length, 568);
    // 3 pages in the database file, 1 frame in the log: at most 4 pages, whatever a frame says.
    assert.throws(
      () => index(log, 3 * 512),
      /state\.db-wal\) says the database has 4294967280 pages of 512 bytes, but the database file and the log hold at most 4/,
    );
    const inTx = wal(512, [
      { page: huge, commit: 0, fill: 0 },
      { page: 2, commit: 3, fill: 0 },
    ]);
    assert.throws(
      () => index(inTx, 3 * 512),
      /state\.db-wal\) writes page 4294967280 of a database it says has 3 pages of 512 bytes, but the database file and the log hold at most 5/,
    );
    // After the last commit, the same frame is ignored, as SQLite ignores it.
    const trailing = wal(512, [
      { page: 2, commit: 3, fill: 0 },
      { page: huge, commit: huge, fill: 0 },
    ]);
    trailing.writeUInt8(trailing.readUInt8(32 + 536 + 30) ^ 1, 32 + 536 + 30); // break its checksum
    assert.equal(index(trailing, 3 * 512).dbPages, 3);
  });

  it('a 1.5 KB database with that 568-byte log is refused on open, without a large allocation', async () => {
    const dir = await makeTempDir('k3s-etcd-wal-unit-');
    try {
      // A database of 3 pages of 512 bytes whose page 1 is an empty table B-tree leaf.
      const db = Buffer.alloc(3 * 512);
      db.write('SQLite format 3\0', 0, 'latin1');
      db.writeUInt16BE(512, 16);
      db.writeUInt8(13, 100);
      const path = join(dir, 'state.db');
      writeFileSync(path, db);
      writeFileSync(`${path}-wal`, wal(512, [{ page: 0xfffffff0, commit: 0xfffffff0, fill: 0 }]));
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      await assert.rejects(async () => {
        const pager = Pager.open(path);
        try {
          await scanTable(pager, 1, () => {});
          peak = Math.max(peak, process.memoryUsage().arrayBuffers);
        } finally {
          pager.close();
        }
      }, /state\.db-wal\) says the database has 4294967280 pages .* hold at most 4/);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      assert.ok(peak - before < 16 * 1024 * 1024, `grew by ${peak - before} bytes`);
    } finally {
      await removeTempDir(dir);
    }
  });

  it('ignores a log whose header names a page size SQLite cannot have', () => {
    const log = wal(512, [{ page: 1, commit: 1, fill: 3 }]);
    log.writeUInt32BE(0x40000000, 8); // 1 GiB pages: not a power of two SQLite allows
    const r = index(log, 512);
    assert.equal(r.frames, 0);
    assert.equal(r.pages.size, 0);
  });
});
