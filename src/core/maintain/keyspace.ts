/**
 * What fills the space, in brief, for the NOSPACE rescue: keys and bytes (key plus value) by
 * Kubernetes resource (`/registry/<resource>/...`, other keys by their first path segment), read
 * in pages (etcd/paginate.ts) at one revision. The full breakdown (namespaces, top keys, leases,
 * decoded objects) is the `keyspace` operation's.
 */
import type { Etcd3 } from 'etcd3';
import { rangePages } from '../etcd/paginate';

export interface KeyspaceGroup {
  /** `/registry/events`, `/registry/configmaps`, `/other-prefix` */
  prefix: string;
  keys: number;
  bytes: number;
}

export interface KeyspaceSummary {
  revision: string;
  keys: number;
  bytes: number;
  /** Largest first. */
  groups: KeyspaceGroup[];
}

/** The group of a key: `/registry/<resource>`, or its first path segment. */
export function keyGroup(key: Buffer): string {
  const text = key.toString('latin1');
  const m = /^(\/registry\/[^/]+)/.exec(text) ?? /^(\/?[^/]*)/.exec(text);
  return (m?.[1] ?? '').replace(/[^\x20-\x7e]/g, '?') || '(empty)';
}

export async function keyspaceSummary(
  client: Etcd3,
  opts: { signal?: AbortSignal; top?: number } = {},
): Promise<KeyspaceSummary> {
  const by = new Map<string, KeyspaceGroup>();
  let revision = '';
  let keys = 0;
  let bytes = 0;
  for await (const page of rangePages(client, {
    start: Buffer.from([0]),
    end: Buffer.from([0]),
    ...(opts.signal ? { signal: opts.signal } : {}),
  })) {
    revision = page.revision;
    for (const kv of page.kvs) {
      const prefix = keyGroup(kv.key);
      const size = kv.key.length + kv.value.length;
      const g = by.get(prefix) ?? { prefix, keys: 0, bytes: 0 };
      g.keys++;
      g.bytes += size;
      by.set(prefix, g);
      keys++;
      bytes += size;
    }
  }
  const groups = [...by.values()].sort((a, b) => b.bytes - a.bytes).slice(0, opts.top ?? 10);
  return { revision, keys, bytes, groups };
}
