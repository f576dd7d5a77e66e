/**
 * SQLite's table B-trees, read only: a scan of every row in rowid order, a row by its rowid, and
 * a row's columns decoded from its record, following overflow chains only as far as the columns
 * asked for. The scan checks the structure as it goes (page types, cell bounds, rowids in
 * order, every page used once, overflow chains inside the file and of the right length), so a
 * damaged file is refused with what is wrong instead of read wrong.
 * Format: https://www.sqlite.org/fileformat2.html#b_tree_pages
 */
import type { Pager } from './pager';

const LEAF = 0x0d;
const INTERIOR = 0x05;

export class CorruptError extends Error {}

/** SQLite's varint at `at`: the value and the bytes it took. */
export function varint(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const byte = b[at + i];
    if (byte === undefined) throw new CorruptError('a varint runs past its page');
    v = v * 128 + (byte & 0x7f);
    if (byte < 0x80) return [v, i + 1];
  }
  const last = b[at + 8];
  if (last === undefined) throw new CorruptError('a varint runs past its page');
  return [v * 256 + last, 9];
}

/** A row's payload: its local bytes on the leaf page, the rest in an overflow chain. */
export interface Payload {
  rowid: number;
  size: number;
  local: Uint8Array;
  overflow: number;
}

export type Column = null | number | Uint8Array;

export class RowRecord {
  /** Serial type and offset of each column in the payload. */
  private readonly cols: { type: number; at: number }[] = [];

  constructor(
    private readonly pager: Pager,
    private readonly payload: Payload,
  ) {
    const head = this.bytes(0, Math.min(payload.size, 9));
    const [headerSize] = varint(head, 0);
    if (headerSize > payload.size)
      throw new CorruptError(`row ${payload.rowid}: record header too long`);
    const header = this.bytes(0, headerSize);
    let at = varint(header, 0)[1];
    let body = headerSize;
    while (at < headerSize) {
      const [type, n] = varint(header, at);
      at += n;
      this.cols.push({ type, at: body });
      body += contentSize(type);
    }
    if (body > payload.size)
      throw new CorruptError(`row ${payload.rowid}: columns overrun the record`);
  }

  /** Bytes of column `i` (0 for NULL or a column added after this row was written). */
  length(i: number): number {
    const c = this.cols[i];
    return c ? contentSize(c.type) : 0;
  }

  /** Column `i`: NULL, a number, or the bytes of a text or blob (`max` bytes at most). */
  get(i: number, max = Infinity): Column {
    const c = this.cols[i];
    if (!c || c.type === 0) return null;
    if (c.type === 8) return 0;
    if (c.type === 9) return 1;
    if (c.type >= 12) return this.bytes(c.at, Math.min(contentSize(c.type), max));
    const b = this.bytes(c.at, contentSize(c.type));
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (c.type === 7) return view.getFloat64(0);
    if (c.type === 6) return Number(view.getBigInt64(0));
    if (c.type === 10 || c.type === 11)
      throw new CorruptError(`row ${this.payload.rowid}: reserved serial type ${c.type}`);
    let v = 0;
    for (const byte of b) v = v * 256 + byte;
    return b[0]! & 0x80 ? v - 256 ** b.length : v;
  }

  /** `length` payload bytes from `offset`: the local part, then the overflow chain. */
  private bytes(offset: number, length: number): Uint8Array {
    const p = this.payload;
    if (offset + length <= p.local.byteLength) return p.local.subarray(offset, offset + length);
    const out = new Uint8Array(length);
    let filled = 0;
    if (offset < p.local.byteLength) {
      out.set(p.local.subarray(offset));
      filled = p.local.byteLength - offset;
    }
    const per = this.pager.usable - 4;
    let page = p.overflow;
    let start = p.local.byteLength; // payload offset of this overflow page's content
    const pages = Math.ceil((p.size - p.local.byteLength) / per);
    for (let k = 0; filled < length; k++) {
      if (k >= pages || page === 0)
        throw new CorruptError(`row ${p.rowid}: overflow chain too short`);
      const want = offset + filled;
      if (want < start + per) {
        const from = want - start;
        const n = Math.min(per - from, length - filled);
        out.set(this.pager.read(page, 4 + from, n), filled);
        filled += n;
      }
      if (filled < length) page = readU32(this.pager.read(page, 0, 4), 0);
      start += per;
    }
    return out;
  }
}

/** Content bytes of a serial type. */
function contentSize(type: number): number {
  if (type >= 12) return Math.floor((type - 12) / 2);
  return [0, 1, 2, 3, 4, 6, 8, 8, 0, 0, 0, 0][type]!;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
}

/** The page header and cell pointers of a table B-tree page. */
function pageCells(
  pager: Pager,
  n: number,
): { type: number; cells: number[]; right: number; data: Uint8Array } {
  const data = pager.page(n);
  const base = n === 1 ? 100 : 0;
  const type = data[base]!;
  if (type !== LEAF && type !== INTERIOR)
    throw new CorruptError(`page ${n} is not a table B-tree page (type ${type})`);
  const count = (data[base + 3]! << 8) | data[base + 4]!;
  const headerSize = type === LEAF ? 8 : 12;
  const right = type === INTERIOR ? readU32(data, base + 8) : 0;
  const cells: number[] = [];
  for (let i = 0; i < count; i++) {
    const at = base + headerSize + 2 * i;
    const ptr = (data[at]! << 8) | data[at + 1]!;
    if (ptr < base + headerSize + 2 * count || ptr >= pager.usable)
      throw new CorruptError(`page ${n}: cell ${i} points outside the page`);
    cells.push(ptr);
  }
  return { type, cells, right, data };
}

/** A leaf cell's payload (local bytes and overflow page) and rowid. */
function leafCell(pager: Pager, n: number, data: Uint8Array, ptr: number): Payload {
  const [size, a] = varint(data, ptr);
  const [rowid, b] = varint(data, ptr + a);
  const start = ptr + a + b;
  const u = pager.usable;
  // No size read from the file decides an allocation beyond the real bytes on disk.
  if (size > pager.pageCount * u)
    throw new CorruptError(
      `page ${n}: row ${rowid} claims ${size} bytes, more than the file holds`,
    );
  const x = u - 35;
  let local = size;
  if (size > x) {
    const m = Math.floor(((u - 12) * 32) / 255) - 23;
    const k = m + ((size - m) % (u - 4));
    local = k <= x ? k : m;
  }
  if (start + local + (local < size ? 4 : 0) > u)
    throw new CorruptError(`page ${n}: row ${rowid} runs past the page`);
  const overflow = local < size ? readU32(data, start + local) : 0;
  if (local < size && (overflow < 1 || overflow > pager.pageCount))
    throw new CorruptError(
      `page ${n}: row ${rowid} overflows to page ${overflow}, outside the file`,
    );
  return { rowid, size, local: data.subarray(start, start + local), overflow };
}

/**
 * Every row of the table rooted at `root`, in rowid order. Yields between pages (every
 * `yieldEvery` pages the caller's `pause` runs, so a long scan leaves the event loop breathing).
 */
export async function scanTable(
  pager: Pager,
  root: number,
  visit: (row: Payload) => void,
  opts: { pause?: () => Promise<void>; yieldEvery?: number } = {},
): Promise<{ pages: number }> {
  const seen = new Uint8Array(Math.ceil((pager.pageCount + 1) / 8));
  const use = (n: number) => {
    if (n < 1 || n > pager.pageCount)
      throw new CorruptError(`a B-tree points at page ${n}, outside the file`);
    if (seen[n >> 3]! & (1 << (n & 7)))
      throw new CorruptError(`page ${n} is used twice in the B-tree`);
    seen[n >> 3]! |= 1 << (n & 7);
  };
  let last = -Infinity;
  let pages = 0;
  const stack = [root];
  use(root);
  while (stack.length > 0) {
    const n = stack.pop()!;
    const { type, cells, right, data } = pageCells(pager, n);
    pages++;
    if (type === LEAF) {
      for (const ptr of cells) {
        const row = leafCell(pager, n, data, ptr);
        if (row.rowid <= last) throw new CorruptError(`page ${n}: rowid ${row.rowid} out of order`);
        last = row.rowid;
        visit(row);
      }
    } else {
      // Children in key order: pushed in reverse, the right-most first.
      use(right);
      stack.push(right);
      for (let i = cells.length - 1; i >= 0; i--) {
        const child = readU32(data, cells[i]!);
        use(child);
        stack.push(child);
      }
    }
    if (opts.pause && pages % (opts.yieldEvery ?? 512) === 0) await opts.pause();
  }
  return { pages };
}

/** The row with `rowid` in the table rooted at `root`, or undefined. */
export function findRow(pager: Pager, root: number, rowid: number): Payload | undefined {
  let n = root;
  for (let depth = 0; depth < 64; depth++) {
    const { type, cells, right, data } = pageCells(pager, n);
    if (type === LEAF) {
      let lo = 0;
      let hi = cells.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const row = leafCell(pager, n, data, cells[mid]!);
        if (row.rowid === rowid) return row;
        if (row.rowid < rowid) lo = mid + 1;
        else hi = mid - 1;
      }
      return undefined;
    }
    // The first cell whose key is >= rowid holds it in its left child; else the right-most.
    let lo = 0;
    let hi = cells.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (varint(data, cells[mid]! + 4)[0] < rowid) lo = mid + 1;
      else hi = mid;
    }
    n = lo < cells.length ? readU32(data, cells[lo]!) : right;
  }
  throw new CorruptError(`the B-tree at page ${root} is deeper than SQLite makes them`);
}
