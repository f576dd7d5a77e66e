/**
 * Reading many keys from etcd in pages, so that no reply grows with what the cluster holds:
 * gRPC refuses a reply over 4 MiB by default ("received message larger than max"), and one
 * range over a prefix of a real cluster passes that easily. Each page is a range from just after
 * the last key seen, pinned to the revision of the first page (one consistent view). The page's
 * key count follows the sizes of the last page so a page stays near `pageBytes` (growing at most
 * twofold a page, since the next keys may be larger); a reply refused as too large is asked
 * again with half as many keys.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { CancelledError } from '../errors';

/** Aimed-at bytes per reply: well under gRPC's default 4 MiB receive limit. */
export const DEFAULT_PAGE_BYTES = 2 * 1024 * 1024;
const FIRST_LIMIT = 64;
const MAX_LIMIT = 10_000;

/** The end of the range holding every key that starts with `prefix` (etcd's prefix rule). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff (or empty): every key from `prefix` on
}

export interface PageOptions {
  /** First key (inclusive). */
  start: Buffer;
  /** End of the range (exclusive); `\0` means "to the end of the keyspace". */
  end: Buffer;
  keysOnly?: boolean;
  /** Aimed-at bytes per reply (default 2 MiB). */
  pageBytes?: number;
  /** Read at this revision; by default the revision of the first page. */
  revision?: string;
  /**
   * Ask each page of a window near its start instead of the whole rest of the range: etcd 3.4
   * walks its index over ALL of [key, range_end) for every limited range (3.5 stops at the
   * limit), so paging a million keys cost O(n^2) there (100 s instead of 10). The window is the
   * keys sharing the first `n` bytes of the page's first key; `n` follows the count etcd
   * returns for the window (narrower when it holds many pages, wider when under one).
   */
  windowed?: boolean;
  /**
   * Served by the member asked alone, without a quorum read (a member that lost its quorum on
   * purpose still answers; the pages are pinned to one revision all the same).
   */
  serializable?: boolean;
  signal?: AbortSignal;
}

export interface Page {
  kvs: IKeyValue[];
  /** The revision every page is read at. */
  revision: string;
}

/** gRPC's RESOURCE_EXHAUSTED for a reply over the receive limit. */
function tooLarge(err: unknown): boolean {
  const e = err as { code?: number; message?: string };
  return (
    e?.code === 8 || /received message larger than max|RESOURCE_EXHAUSTED/i.test(String(e?.message))
  );
}

/** The pages of [start, end), in key order. */
export async function* rangePages(client: Etcd3, opts: PageOptions): AsyncGenerator<Page> {
  const target = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
  let limit = FIRST_LIMIT;
  let key = opts.start;
  let revision = opts.revision;
  const toEnd = opts.end.length === 1 && opts.end[0] === 0;
  let width = Math.min(12, Math.max(1, key.length)); // bytes of the key that make the window
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError('Reading etcd');
    // The window's end: the end of the keys sharing `width` bytes with `key`, unless that is
    // past the range's end.
    let rangeEnd = opts.end;
    if (opts.windowed && key.length > 0) {
      const w = prefixEnd(key.subarray(0, Math.min(width, key.length)));
      const wToEnd = w.length === 1 && w[0] === 0;
      if (!wToEnd && (toEnd || Buffer.compare(w, opts.end) < 0)) rangeEnd = w;
    }
    let res;
    try {
      res = await client.kv.range({
        key,
        range_end: rangeEnd,
        limit,
        ...(revision ? { revision } : {}),
        ...(opts.keysOnly ? { keys_only: true } : {}),
        ...(opts.serializable ? { serializable: true } : {}),
      });
    } catch (err) {
      if (tooLarge(err) && limit > 1) {
        limit = Math.max(1, Math.floor(limit / 2));
        continue;
      }
      throw err;
    }
    revision ??= String(res.header.revision);
    if (res.kvs.length > 0) yield { kvs: res.kvs, revision };
    if (rangeEnd !== opts.end) {
      const count = Number(res.count);
      if (count > 16 * limit) width += 4;
      else if (count > 4 * limit) width += 1;
      else if (!res.more && count < limit / 2 && width > 1) width -= 1;
      if (!res.more) {
        key = rangeEnd; // the window is read: the next one starts where it ended
        continue;
      }
    } else if (!res.more || res.kvs.length === 0) return;
    let bytes = 0;
    for (const kv of res.kvs) bytes += kv.key.byteLength + (kv.value?.byteLength ?? 0) + 32;
    // The next page from just after the last key, sized by this page's average pair.
    key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    const fit = Math.floor(target / Math.max(1, bytes / res.kvs.length));
    limit = Math.max(1, Math.min(MAX_LIMIT, limit * 2, fit));
  }
}

/** Every key-value pair of [start, end), page by page (see rangePages). */
export async function* rangeAll(client: Etcd3, opts: PageOptions): AsyncGenerator<IKeyValue> {
  for await (const page of rangePages(client, opts)) yield* page.kvs;
}

/** How many keys [start, end) holds, without reading them (a count-only range is small). */
export async function countRange(client: Etcd3, start: Buffer, end: Buffer): Promise<number> {
  const res = await client.kv.range({ key: start, range_end: end, count_only: true });
  return Number(res.count);
}
