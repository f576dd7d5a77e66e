/**
 * The fingerprint the source and the target are compared by: every key of the keyspace at one
 * revision, counted and hashed as the SQLite migration hashes its pairs (SHA-256 over each
 * length-prefixed key and value, in key order). The target's is read from etcd in pages
 * (`etcd/paginate.ts`); the source's from its database file, copied once K3s is stopped
 * (`etcd/dbFile.ts`): two readers of the same keys, so a difference is the move's, not theirs.
 */
import type { Etcd3 } from 'etcd3';
import { openDbFile } from '../etcd/dbFile';
import { rangePages } from '../etcd/paginate';
import { pairsHasher } from '../migrate/preflight';

export interface KeyDigest {
  /** The revision every page was read at. */
  revision: string;
  keys: number;
  /** Bytes of keys and values. */
  bytes: number;
  sha256: string;
}

/**
 * Every key of `client`'s member at `revision` (default: its current one). `serializable` reads
 * from the member asked alone, which serves it without a quorum (the source's leader once its
 * followers are stopped).
 */
export async function keyDigest(
  client: Etcd3,
  opts: { revision?: string; serializable?: boolean; signal?: AbortSignal } = {},
): Promise<KeyDigest> {
  const h = pairsHasher();
  let keys = 0;
  let bytes = 0;
  let revision = opts.revision ?? '';
  const all = Buffer.from([0]);
  for await (const page of rangePages(client, {
    start: all,
    end: all,
    ...(opts.revision ? { revision: opts.revision } : {}),
    ...(opts.serializable ? { serializable: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  })) {
    revision = page.revision;
    for (const kv of page.kvs) {
      h.add(kv.key, kv.value);
      keys++;
      bytes += kv.key.byteLength + kv.value.byteLength;
    }
  }
  if (!revision) revision = (await client.maintenance.status()).header.revision;
  return { revision, keys, bytes, sha256: h.digest() };
}

/** The same fingerprint of an etcd database file: its keys at its last revision, as etcd would serve them. */
export async function fileDigest(
  file: string,
  opts: { signal?: AbortSignal } = {},
): Promise<KeyDigest> {
  const db = await openDbFile(file, opts);
  try {
    const h = pairsHasher();
    let keys = 0;
    let bytes = 0;
    for await (const kv of db.latest()) {
      h.add(kv.key, kv.value);
      keys++;
      bytes += kv.key.byteLength + kv.value.byteLength;
    }
    return { revision: await db.revision(), keys, bytes, sha256: h.digest() };
  } finally {
    await db.close();
  }
}
