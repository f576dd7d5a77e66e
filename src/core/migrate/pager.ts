/**
 * SQLite's pages read from disk on demand, with the write-ahead log applied as SQLite applies
 * it, without copying the database: kine runs SQLite in WAL mode, so the newest rows of a
 * `state.db` copied with K3s stopped may live only in `state.db-wal`. The log is read once, frame
 * by frame, to index the committed frames (page number → where its newest committed image lies
 * in the log); a page is then read from the log when the index has it, else from the database
 * file. Frames after the last commit, or whose salt or cumulative checksum do not match, are
 * ignored, exactly as SQLite ignores them; a committed transaction may neither claim nor write
 * more pages than the database file and the log hold (its pages plus one per frame), so no page
 * number read from the log sizes anything. Files are only read. Memory: the index and a small page cache.
 * Format: https://www.sqlite.org/fileformat2.html
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { K3sEtcdError } from '../errors';

const WAL_HEADER = 32;
const FRAME_HEADER = 24;
const CACHE_PAGES = 1024;

/** SQLite's page sizes: a power of two from 512 to 65536 (65536 is stored as 1). */
export function validPageSize(n: number): boolean {
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

export interface WalIndex {
  pageSize: number;
  /** Committed frames (0 when there is no usable log). */
  frames: number;
  /** The database's size in pages after the last commit (0: no commit). */
  dbPages: number;
  /** Page number → offset in the log of its newest committed image. */
  pages: Map<number, number>;
}

/**
 * Indexes the committed frames of a log of `walBytes` bytes read through `read(offset, length)`,
 * for a database file of `dbFileBytes` bytes. A log SQLite would ignore gives no frames.
 */
export function walIndex(
  read: (offset: number, length: number) => Uint8Array,
  walBytes: number,
  dbFileBytes: number,
): WalIndex {
  const none = (pageSize: number): WalIndex => ({
    pageSize,
    frames: 0,
    dbPages: 0,
    pages: new Map(),
  });
  if (walBytes < WAL_HEADER) return none(0);
  const header = read(0, WAL_HEADER);
  const h = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const magic = h.getUint32(0);
  const pageSize = h.getUint32(8) === 1 ? 65536 : h.getUint32(8);
  // A header with a page size SQLite cannot have makes SQLite ignore the log; so do we.
  if ((magic !== 0x377f0682 && magic !== 0x377f0683) || !validPageSize(pageSize)) return none(0);
  const bigEndian = (magic & 1) === 1;
  const salt1 = h.getUint32(16);
  const salt2 = h.getUint32(20);
  let sum = checksum(header.subarray(0, 24), [0, 0], bigEndian);
  if (sum[0] !== h.getUint32(24) || sum[1] !== h.getUint32(28)) return none(pageSize);
  const out = none(pageSize);
  const pending: Array<[number, number]> = [];
  const frameSize = FRAME_HEADER + pageSize;
  // The most pages the database can truthfully have: the database file's own pages plus one per
  // frame the log holds (a page is in the file or was written to the log). A frame naming a page
  // past that, or a commit claiming more, is not believed: it would size every bitmap and bound
  // that follows.
  const maxPages =
    Math.ceil(dbFileBytes / pageSize) + Math.floor((walBytes - WAL_HEADER) / frameSize);
  let highestPending = 0;
  for (let at = WAL_HEADER; at + frameSize <= walBytes; at += frameSize) {
    const frame = read(at, frameSize);
    const f = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const page = f.getUint32(0);
    const commit = f.getUint32(4);
    if (f.getUint32(8) !== salt1 || f.getUint32(12) !== salt2) break;
    sum = checksum(frame.subarray(0, 8), sum, bigEndian);
    sum = checksum(frame.subarray(FRAME_HEADER), sum, bigEndian);
    if (sum[0] !== f.getUint32(16) || sum[1] !== f.getUint32(20)) break;
    if (page === 0) break;
    pending.push([page, at + FRAME_HEADER]);
    highestPending = Math.max(highestPending, page);
    // Frames after the last commit are ignored, as SQLite ignores them; a transaction is judged
    // when it commits.
    if (commit !== 0) {
      const claim = Math.max(commit, highestPending);
      if (claim > maxPages) {
        const what =
          commit >= highestPending
            ? `says the database has ${commit} pages`
            : `writes page ${highestPending} of a database it says has ${commit} pages`;
        throw new K3sEtcdError(
          'migrate-source',
          `The write-ahead log (state.db-wal) ${what} of ${pageSize} bytes, but the database file and the log hold at most ${maxPages}: the log is damaged or belongs to another database. Copy state.db and state.db-wal again with K3s stopped (k3s-etcd k3s backup), or move the -wal file aside to read the database without it.`,
        );
      }
      out.frames += pending.length;
      for (const [p, offset] of pending.splice(0)) out.pages.set(p, offset);
      highestPending = 0;
      out.dbPages = commit;
    }
  }
  // Pages past the committed size are not part of the database.
  for (const p of out.pages.keys()) if (p > out.dbPages) out.pages.delete(p);
  return out;
}

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const buf = Buffer.allocUnsafe(length);
  const n = readSync(fd, buf, 0, length, offset);
  if (n < length) buf.fill(0, n);
  return buf;
}

/** The page size in the database file's header (bytes 16-17; 1 means 65536). */
function headerPageSize(fd: number): number {
  const b = readAt(fd, 16, 2);
  const size = (b[0]! << 8) | b[1]!;
  return size === 1 ? 65536 : size;
}

/** A read-only view of a SQLite database and its log, page by page. */
export class Pager {
  readonly pageSize: number;
  /** Usable bytes per page (the page size less the reserved tail). */
  readonly usable: number;
  readonly pageCount: number;
  /** Committed log frames applied. */
  readonly walFrames: number;
  /** The text encoding (1 = UTF-8, 2 = UTF-16le, 3 = UTF-16be). */
  readonly encoding: number;
  private readonly cache = new Map<number, Uint8Array>();
  pagesRead = 0;

  private constructor(
    private readonly fd: number,
    private readonly walFd: number | undefined,
    private readonly wal: WalIndex,
    dbBytes: number,
  ) {
    this.pageSize = dbBytes >= 100 ? headerPageSize(fd) : wal.pageSize;
    if (!validPageSize(this.pageSize)) throw new Error('no valid page size in the header');
    this.walFrames = wal.frames;
    this.pageCount = wal.dbPages || Math.floor(dbBytes / this.pageSize);
    const first = this.page(1);
    if (Buffer.from(first.subarray(0, 16)).toString('latin1') !== 'SQLite format 3\0')
      throw new Error('no SQLite header');
    this.usable = this.pageSize - first[20]!;
    this.encoding = new DataView(first.buffer, first.byteOffset).getUint32(56) || 1;
  }

  /** Opens `path` and the `-wal` beside it (when there is one). */
  static open(path: string): Pager {
    const fd = openSync(path, 'r');
    let walFd: number | undefined;
    try {
      const dbBytes = fstatSync(fd).size;
      let index: WalIndex = { pageSize: 0, frames: 0, dbPages: 0, pages: new Map() };
      try {
        walFd = openSync(`${path}-wal`, 'r');
      } catch {
        walFd = undefined;
      }
      if (walFd !== undefined) {
        const w = walFd;
        index = walIndex((o, n) => readAt(w, o, n), fstatSync(w).size, dbBytes);
        // A log for another page size than the database's is not this database's.
        if (dbBytes >= 100 && index.frames > 0 && headerPageSize(fd) !== index.pageSize)
          index = { ...index, frames: 0, dbPages: 0, pages: new Map() };
      }
      return new Pager(fd, walFd, index, dbBytes);
    } catch (err) {
      closeSync(fd);
      if (walFd !== undefined) closeSync(walFd);
      throw err;
    }
  }

  /** `length` bytes of page `n` from `offset` (not cached: overflow chains, read once). */
  read(n: number, offset: number, length: number): Uint8Array {
    if (n < 1 || n > this.pageCount) throw new Error(`page ${n} is outside the database`);
    const cached = this.cache.get(n);
    if (cached) return cached.subarray(offset, offset + length);
    this.pagesRead++;
    const inWal = this.wal.pages.get(n);
    return inWal !== undefined
      ? readAt(this.walFd!, inWal + offset, length)
      : readAt(this.fd, (n - 1) * this.pageSize + offset, length);
  }

  /** Page `n`, whole (B-tree pages: a small cache keeps the upper levels). */
  page(n: number): Uint8Array {
    const hit = this.cache.get(n);
    if (hit) {
      this.cache.delete(n);
      this.cache.set(n, hit);
      return hit;
    }
    const p = this.read(n, 0, this.pageSize);
    this.cache.set(n, p);
    if (this.cache.size > CACHE_PAGES) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  close(): void {
    closeSync(this.fd);
    if (this.walFd !== undefined) closeSync(this.walFd);
  }
}
