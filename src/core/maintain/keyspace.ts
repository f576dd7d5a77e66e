/**
 * What fills the space, in brief, for the NOSPACE rescue: keys and bytes (key plus value) by
 * Kubernetes resource (`/registry/<resource>/...`, other keys by their first path segment), read
 * in pages (etcd/paginate.ts) at one revision, at most a budget's worth (the first 256 MiB in
 * key order, then it says it stopped there). The full breakdown (namespaces, top keys, leases,
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
  /** Set when the read stopped at its budget: the figures cover the keys read so far. */
  partial?: true;
  /** Largest first. */
  groups: KeyspaceGroup[];
}

/** The group of a key: `/registry/<resource>`, or its first path segment. */
export function keyGroup(key: Buffer): string {
  const text = key.toString('latin1');
  const m = /^(\/registry\/[^/]+)/.exec(text) ?? /^(\/?[^/]*)/.exec(text);
  return (m?.[1] ?? '').replace(/[^\x20-\x7e]/g, '?') || '(empty)';
}

/** What the rescue reads at most before it answers (a full database may hold gigabytes). */
export const KEYSPACE_BUDGET_BYTES = 256 * 1024 * 1024;

export async function keyspaceSummary(
  client: Etcd3,
  opts: { signal?: AbortSignal; top?: number; budgetBytes?: number } = {},
): Promise<KeyspaceSummary> {
  const budget = opts.budgetBytes ?? KEYSPACE_BUDGET_BYTES;
  let partial = false;
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
    if (bytes >= budget) {
      partial = true;
      break;
    }
  }
  const groups = [...by.values()].sort((a, b) => b.bytes - a.bytes).slice(0, opts.top ?? 10);
  return { revision, keys, bytes, groups, ...(partial ? { partial: true as const } : {}) };
}
