/**
 * SQLite's write-ahead log applied in memory: kine runs SQLite in WAL mode, so the newest rows of
 * a `state.db` copied with K3s stopped may live only in `state.db-wal`. The WebAssembly SQLite we
 * read with opens a single file, so the committed frames of the WAL are written into a copy of
 * the database pages here (the checkpoint SQLite would do), and the header is switched to the
 * rollback journal so the copy opens on its own. Frames after the last commit, or whose salt or
 * cumulative checksum do not match, are ignored, exactly as SQLite ignores them.
 * Format: https://www.sqlite.org/fileformat2.html#walformat
 */

import { K3sEtcdError } from '../errors';

const WAL_HEADER = 32;
const FRAME_HEADER = 24;

/** SQLite's page sizes: a power of two from 512 to 65536 (65536 is stored as 1). */
function validPageSize(n: number): boolean {
  return n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

/** SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`. */
function checksum(data: Uint8Array, s: [number, number], bigEndian: boolean): [number, number] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let [s0, s1] = s;
  for (let i = 0; i < data.byteLength; i += 8) {
    const x0 = view.getUint32(i, !bigEndian);
    const x1 = view.getUint32(i + 4, !bigEndian);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

export interface WalResult {
  /** The database with the WAL's committed frames applied, in rollback-journal mode. */
  db: Uint8Array;
  /** Frames applied (0 when there was no usable WAL). */
  frames: number;
}

export function applyWal(dbFile: Uint8Array, wal: Uint8Array | undefined): WalResult {
  let db = new Uint8Array(dbFile);
  let frames = 0;
  if (wal && wal.byteLength >= WAL_HEADER) {
    const h = new DataView(wal.buffer, wal.byteOffset, wal.byteLength);
    const magic = h.getUint32(0);
    const pageSize = h.getUint32(8) === 1 ? 65536 : h.getUint32(8);
    // A header with a page size SQLite cannot have makes SQLite ignore the log; so do we.
    if ((magic === 0x377f0682 || magic === 0x377f0683) && validPageSize(pageSize)) {
      const bigEndian = (magic & 1) === 1;
      const salt1 = h.getUint32(16);
      const salt2 = h.getUint32(20);
      let sum = checksum(wal.subarray(0, 24), [0, 0], bigEndian);
      const headerOk = sum[0] === h.getUint32(24) && sum[1] === h.getUint32(28);
      const pending: Array<{ page: number; at: number }> = [];
      let committed: Array<{ page: number; at: number }> = [];
      let dbPages = 0;
      // The most pages a commit can truthfully claim: the database file's own pages, or the
      // highest page the log itself wrote. A header that claims more is not believed, so no size
      // read from the file decides an allocation beyond the real bytes on disk.
      let highestPage = Math.ceil(db.byteLength / pageSize);
      for (
        let at = WAL_HEADER;
        headerOk && at + FRAME_HEADER + pageSize <= wal.byteLength;
        at += FRAME_HEADER + pageSize
      ) {
        const page = h.getUint32(at);
        const commit = h.getUint32(at + 4);
        if (h.getUint32(at + 8) !== salt1 || h.getUint32(at + 12) !== salt2) break;
        sum = checksum(wal.subarray(at, at + 8), sum, bigEndian);
        sum = checksum(
          wal.subarray(at + FRAME_HEADER, at + FRAME_HEADER + pageSize),
          sum,
          bigEndian,
        );
        if (sum[0] !== h.getUint32(at + 16) || sum[1] !== h.getUint32(at + 20)) break;
        if (page === 0) break;
        pending.push({ page, at: at + FRAME_HEADER });
        highestPage = Math.max(highestPage, page);
        if (commit !== 0) {
          if (commit > highestPage) {
            throw new K3sEtcdError(
              'migrate-source',
              `The write-ahead log (state.db-wal) says the database has ${commit} pages of ${pageSize} bytes, but the database file and the log hold at most ${highestPage}: the log is damaged or belongs to another database. Copy state.db and state.db-wal again with K3s stopped (k3s-etcd k3s backup), or move the -wal file aside to read the database without it.`,
            );
          }
          committed = committed.concat(pending.splice(0));
          dbPages = commit;
        }
      }
      if (committed.length > 0) {
        const size = dbPages * pageSize;
        const out = new Uint8Array(Math.max(size, 0));
        out.set(db.subarray(0, Math.min(db.byteLength, size)));
        for (const f of committed) {
          if (f.page <= dbPages)
            out.set(wal.subarray(f.at, f.at + pageSize), (f.page - 1) * pageSize);
        }
        db = out;
        frames = committed.length;
      }
    }
  }
  // Bytes 18 and 19: file format write and read versions, 2 = WAL, 1 = rollback journal.
  if (db.byteLength >= 100 && (db[18] === 2 || db[19] === 2)) {
    db[18] = 1;
    db[19] = 1;
  }
  return { db, frames };
}
