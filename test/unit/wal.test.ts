import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { walIndex } from '../../src/core/migrate/pager';

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
      /says the database has 2097152 pages of 512 bytes, but the database file and the log hold at most 1/,
    );
  });

  it('ignores a log whose header names a page size SQLite cannot have', () => {
    const log = wal(512, [{ page: 1, commit: 1, fill: 3 }]);
    log.writeUInt32BE(0x40000000, 8); // 1 GiB pages: not a power of two SQLite allows
    const r = index(log, 512);
    assert.equal(r.frames, 0);
    assert.equal(r.pages.size, 0);
  });
});
