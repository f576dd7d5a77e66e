/**
 * etcd's database file (`<data dir>/member/snap/db`, a bbolt file) read directly, for a member
 * whose etcd is stopped and so cannot be asked: its revision, and its keys at that revision
 * (what etcd would serve once started on it), for the move off K3s's embedded etcd, which copies
 * that file once K3s is stopped everywhere.
 *
 * Only what that needs, and only reading: bbolt's two meta pages (the valid one with the higher
 * transaction wins, as bbolt chooses), its B+tree pages (branch, leaf, overflow, inline buckets),
 * etcd's `key` bucket (each revision as `<main>_<sub>` in 8-byte big-endian numbers, `t` appended
 * for a deletion, the value an `mvccpb.KeyValue`) and the compaction revision of its `meta`
 * bucket. Anything else than that shape is refused as not a database, never guessed at. What
 * this reads is compared, by the move, with what etcd serves from the same file after the
 * restore: a reader mistake stops the move instead of passing.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { CancelledError, K3sEtcdError } from '../errors';
import { fields } from './wire';

const MAGIC = 0xed0cdaed;
const VERSION = 2;
const HEADER = 16; // a page's header: id u64, flags u16, count u16, overflow u32
const ELEMENT = 16; // a branch or leaf element
const BRANCH = 0x01;
const LEAF = 0x02;
const META = 0x04;
const BUCKET_ENTRY = 0x01;
/** The meta fields the checksum covers: magic, version, page size, flags, root, freelist, pgid, txid. */
const META_SUMMED = 56;
const REVISION_BYTES = 17; // 8-byte main, '_', 8-byte sub
const TOMBSTONE = 't'.charCodeAt(0);

interface Meta {
  pageSize: number;
  /** The root bucket's root page. */
  root: bigint;
  /** The high-water mark: every page in use is below it. */
  pgid: bigint;
  txid: bigint;
}

/** Bytes of the file (a page with its overflow) and where they start in it. */
interface Block {
  buf: Buffer;
  at: number;
}

/** A node of a B+tree: a page, or an inline bucket's page inside a value. */
interface Node {
  block: Block;
  off: number;
}

/** One leaf element: its key and value, as offsets into its block. */
interface Entry {
  block: Block;
  key: [number, number];
  value: [number, number];
  bucket: boolean;
}

function fnv64a(b: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const x of b) h = ((h ^ BigInt(x)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

/**
 * The key and value of an `mvccpb.KeyValue` (fields 1 and 5, both bytes) in `b[start, end)`, as
 * offsets into `b`; the other fields are passed over (`wire.ts` bounds every length).
 */
export function keyValueFields(
  b: Buffer,
  start: number,
  end: number,
): { key: [number, number]; value: [number, number] } {
  let key: [number, number] = [start, start];
  let value: [number, number] = [start, start];
  for (const f of fields(b.subarray(start, end))) {
    if (f.wire !== 2) continue;
    if (f.no === 1) key = [start + f.at, start + f.at + f.size];
    else if (f.no === 5) value = [start + f.at, start + f.at + f.size];
  }
  return { key, value };
}

class BoltFile {
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly le: boolean,
    readonly meta: Meta,
    private readonly signal?: AbortSignal,
  ) {}

  bad(why: string): K3sEtcdError {
    return new K3sEtcdError(
      'snapshot-invalid',
      `${this.path} is not a readable etcd database: ${why}.`,
    );
  }

  u16 = (b: Buffer, o: number) => (this.le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  u32 = (b: Buffer, o: number) => (this.le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  u64 = (b: Buffer, o: number) => (this.le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));

  async read(at: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fh.read(buf, 0, length, at);
    if (bytesRead !== length) throw this.bad(`it ends inside the page at byte ${at}`);
    return buf;
  }

  async page(id: bigint): Promise<Node> {
    if (this.signal?.aborted) throw new CancelledError('Reading the database');
    if (id < 2n || id >= this.meta.pgid)
      throw this.bad(`page ${id} is outside the pages in use (2 to ${this.meta.pgid - 1n})`);
    const at = Number(id) * this.meta.pageSize;
    const head = await this.read(at, HEADER);
    if (this.u64(head, 0) !== id) throw this.bad(`page ${id} says it is page ${this.u64(head, 0)}`);
    const pages = this.u32(head, 12) + 1;
    if (id + BigInt(pages) > this.meta.pgid) throw this.bad(`page ${id} overflows the file`);
    return { block: { buf: await this.read(at, pages * this.meta.pageSize), at }, off: 0 };
  }

  /** The root node of a bucket whose header is the value `[s, e)` of `block`. */
  async bucketRoot(block: Block, [s, e]: [number, number]): Promise<Node> {
    if (e - s < 16) throw this.bad('a bucket header is short');
    const root = this.u64(block.buf, s);
    return root === 0n ? { block, off: s + 16 } : this.page(root);
  }

  /** The elements of a node, checked against its block. */
  elements(n: Node): { leaf: boolean; count: number; at(i: number): number } {
    const { buf } = n.block;
    if (n.off + HEADER > buf.length) throw this.bad('a page header past its page');
    const flags = this.u16(buf, n.off + 8);
    if (flags !== BRANCH && flags !== LEAF) throw this.bad(`a tree page has the type ${flags}`);
    const count = this.u16(buf, n.off + 10);
    if (n.off + HEADER + count * ELEMENT > buf.length) throw this.bad('elements past their page');
    return { leaf: flags === LEAF, count, at: (i) => n.off + HEADER + i * ELEMENT };
  }

  entry(n: Node, e: number): Entry {
    const { buf } = n.block;
    const pos = e + this.u32(buf, e + 4);
    const ksize = this.u32(buf, e + 8);
    const vsize = this.u32(buf, e + 12);
    if (pos + ksize + vsize > buf.length) throw this.bad('a key or value past its page');
    return {
      block: n.block,
      key: [pos, pos + ksize],
      value: [pos + ksize, pos + ksize + vsize],
      bucket: (this.u32(buf, e) & BUCKET_ENTRY) !== 0,
    };
  }

  child(n: Node, e: number): bigint {
    return this.u64(n.block.buf, e + 8);
  }

  /** Every leaf entry under `n`, in key order. */
  async walk(n: Node, visit: (x: Entry) => void, depth = 0): Promise<void> {
    if (depth > 64) throw this.bad('its tree is deeper than any bbolt tree');
    const els = this.elements(n);
    for (let i = 0; i < els.count; i++) {
      if (els.leaf) visit(this.entry(n, els.at(i)));
      else await this.walk(await this.page(this.child(n, els.at(i))), visit, depth + 1);
    }
  }

  /** The last leaf entry under `n` (the highest key), if any. */
  async last(n: Node, depth = 0): Promise<Entry | undefined> {
    if (depth > 64) throw this.bad('its tree is deeper than any bbolt tree');
    const els = this.elements(n);
    if (els.count === 0) return undefined;
    const e = els.at(els.count - 1);
    return els.leaf ? this.entry(n, e) : this.last(await this.page(this.child(n, e)), depth + 1);
  }

  /** A top-level bucket by name, or undefined. */
  async bucket(name: string): Promise<Node | undefined> {
    let found: Entry | undefined;
    await this.walk(await this.page(this.meta.root), (x) => {
      if (x.bucket && x.block.buf.toString('latin1', ...x.key) === name) found = x;
    });
    return found ? this.bucketRoot(found.block, found.value) : undefined;
  }

  mainRevision(x: Entry): bigint {
    const [s, e] = x.key;
    if (e - s !== REVISION_BYTES && e - s !== REVISION_BYTES + 1)
      throw this.bad(`a revision key of ${e - s} bytes`);
    return x.block.buf.readBigUInt64BE(s);
  }
}

async function readMeta(fh: FileHandle, path: string): Promise<{ meta: Meta; le: boolean }> {
  const bad = (why: string) =>
    new K3sEtcdError('snapshot-invalid', `${path} is not a readable etcd database: ${why}.`);
  const first = Buffer.alloc(HEADER + 64);
  await fh.read(first, 0, first.length, 0);
  const le = first.readUInt32LE(HEADER) === MAGIC;
  if (!le && first.readUInt32BE(HEADER) !== MAGIC) throw bad('it is not a bbolt file');
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number) => (le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const parse = (b: Buffer): Meta | undefined => {
    const m = b.subarray(HEADER);
    if (u16(b, 8) !== META) return undefined;
    if (u32(m, 0) !== MAGIC || u32(m, 4) !== VERSION) return undefined;
    if (u64(m, META_SUMMED) !== fnv64a(m.subarray(0, META_SUMMED))) return undefined;
    return { pageSize: u32(m, 8), root: u64(m, 16), pgid: u64(m, 40), txid: u64(m, 48) };
  };
  const m0 = parse(first);
  const size = m0?.pageSize ?? u32(first, HEADER + 8);
  if (!Number.isInteger(Math.log2(size)) || size < 512 || size > 1 << 20)
    throw bad(`its page size ${size} is not a bbolt page size`);
  const second = Buffer.alloc(HEADER + 64);
  await fh.read(second, 0, second.length, size);
  const m1 = parse(second);
  const metas = [m0, m1].filter((m): m is Meta => m !== undefined && m.pageSize === size);
  const meta = metas.sort((a, b) => (a.txid > b.txid ? -1 : 1))[0];
  if (!meta) throw bad('neither of its meta pages is valid');
  return { meta, le };
}

export interface DbFile {
  /** The revision etcd serves once started on this file. */
  revision(): Promise<string>;
  /** Each key at that revision with its value, in key order (deleted keys left out). */
  latest(): AsyncGenerator<{ key: Buffer; value: Buffer }>;
  close(): Promise<void>;
}

/** Opens etcd's database file at `path` to read (it must not be in use by an etcd). */
export async function openDbFile(
  path: string,
  opts: { signal?: AbortSignal } = {},
): Promise<DbFile> {
  const fh = await open(path, 'r');
  let file: BoltFile;
  try {
    const { meta, le } = await readMeta(fh, path);
    file = new BoltFile(fh, path, le, meta, opts.signal);
  } catch (err) {
    await fh.close();
    throw err;
  }
  const keyBucket = async () => {
    const b = await file.bucket('key');
    if (!b) throw file.bad('it has no key bucket');
    return b;
  };
  return {
    async revision() {
      // As etcd restores its store: the last revision of the key bucket, or the compaction's
      // when that is later (a compaction may remove the tombstone of the last write).
      const last = await file.last(await keyBucket());
      let rev = last ? file.mainRevision(last) : 1n;
      const meta = await file.bucket('meta');
      if (meta) {
        let compacted: bigint | undefined;
        await file.walk(meta, (x) => {
          const name = x.block.buf.toString('latin1', ...x.key);
          if (name === 'finishedCompactRev' && x.value[1] - x.value[0] >= 8)
            compacted = x.block.buf.readBigUInt64BE(x.value[0]);
        });
        if (compacted !== undefined && compacted > rev) rev = compacted;
      }
      return String(rev);
    },
    async *latest() {
      // Revisions in order: the last entry of a key is its state; a tombstone removes it. Only
      // where each value lies is kept, the values are read again in key order.
      const at = new Map<string, [number, number]>();
      let problem: string | undefined;
      await file.walk(await keyBucket(), (x) => {
        if (problem) return;
        const [s, e] = x.key;
        if (e - s !== REVISION_BYTES && e - s !== REVISION_BYTES + 1) {
          problem = `a revision key of ${e - s} bytes`;
          return;
        }
        const buf = x.block.buf;
        try {
          const kv = keyValueFields(buf, ...x.value);
          const name = buf.toString('latin1', ...kv.key);
          if (e - s === REVISION_BYTES + 1 && buf[e - 1] === TOMBSTONE) at.delete(name);
          else at.set(name, [x.block.at + kv.value[0], kv.value[1] - kv.value[0]]);
        } catch (err) {
          problem = `a key's record does not decode (${(err as Error).message})`;
        }
      });
      if (problem) throw file.bad(problem);
      // Latin-1 strings order as their bytes do: key order, as etcd ranges.
      for (const name of [...at.keys()].sort()) {
        if (opts.signal?.aborted) throw new CancelledError('Reading the database');
        const [pos, len] = at.get(name) as [number, number];
        yield { key: Buffer.from(name, 'latin1'), value: await file.read(pos, len) };
      }
    },
    close: () => fh.close(),
  };
}
