/**
 * What fills an etcd keyspace: one consistent, paginated pass over the keys (values are sized,
 * their envelope header decoded, and dropped with their page), etcd's lease list with the TTL of
 * the leases holding most keys, and the revision and compaction state. Memory stays bounded by
 * the tally's aggregates and its top-N heap; never one huge range (see etcd/paginate.ts).
 */
import type { Etcd3 } from 'etcd3';
import { humanBytes } from '../../shared/etcdTypes';
import { CancelledError } from '../errors';
import { prefixEnd, rangePages } from '../etcd/paginate';
import {
  KeyspaceTally,
  type LeaseUsage,
  type NamespaceUsage,
  type ResourceUsage,
  type SecretsAtRest,
  type TopKey,
} from './tally';
import { printable } from './view';
import { oldestReadableRevision } from '../etcd/compaction';

export interface KeyspaceOptions {
  /** Only keys starting with this (default: the whole keyspace). */
  prefix?: string;
  /** How many of the largest keys to keep (default 20). */
  top?: number;
  /** How many leases (those holding most keys) to ask their TTL of (default 20). */
  leaseTtls?: number;
  pageBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: { keys: number; bytes: number }) => void;
}

export interface Compaction {
  /** The oldest revision etcd can still read (found by probing; 1 when never compacted). */
  compactRevision: number;
  /** Revisions written since then: what the next compaction can free. */
  revisionsSince: number;
  /** kube-apiserver's record of its compactions (the `compact_rev_key` key), when present. */
  kubernetes?: { lastRevision: string; compactions: number; modRevision: string };
}

export interface KeyspaceReport {
  prefix: string;
  /** The revision every page was read at. */
  revision: string;
  compaction?: Compaction;
  keys: number;
  /** Key plus value bytes of every key scanned (the logical size; the bbolt file is larger). */
  bytes: number;
  valueBytes: number;
  resources: ResourceUsage[];
  namespaces: NamespaceUsage[];
  top: TopKey[];
  leases: {
    /** etcd's lease list (every lease, with keys or not). */
    total?: number;
    /** Scanned keys attached to a lease. */
    keysWithLease: number;
    list: LeaseUsage[];
  };
  secrets: SecretsAtRest;
  /** Set when a cap folded rows into "(other)" (a keyspace with very many distinct names). */
  folded?: boolean;
  pages: number;
  elapsedMs: number;
}

/** The oldest readable revision (see etcd/compaction.ts). */
export const compactRevision = oldestReadableRevision;

async function compaction(client: Etcd3, revision: number): Promise<Compaction> {
  const [compact, kube] = await Promise.all([
    compactRevision(client, revision),
    client.kv.range({ key: Buffer.from('compact_rev_key') }),
  ]);
  const kv = kube.kvs[0];
  const last = kv?.value.toString('latin1') ?? '';
  return {
    compactRevision: compact,
    revisionsSince: revision - compact,
    ...(kv && /^\d{1,20}$/.test(last)
      ? {
          kubernetes: {
            lastRevision: last,
            compactions: Number(kv.version),
            modRevision: kv.mod_revision,
          },
        }
      : {}),
  };
}

/** TTLs of `leases`, four at a time; a lease gone meanwhile keeps no TTL. */
async function leaseTtls(client: Etcd3, leases: LeaseUsage[], signal?: AbortSignal): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < leases.length) {
      if (signal?.aborted) return;
      const l = leases[next++]!;
      if (!/^[0-9a-f]{1,16}$/.test(l.id)) continue; // "(other)"
      try {
        const r = await client.leaseClient.leaseTimeToLive({
          ID: BigInt(`0x${l.id}`).toString(10),
        });
        if (Number(r.TTL) >= 0) {
          l.ttl = Number(r.TTL);
          l.grantedTtl = Number(r.grantedTTL);
        }
      } catch {
        // expired between the scan and now: no TTL to show
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/**
 * The pages of `pages`, one read ahead: the next page is asked for while this one is tallied,
 * so etcd reads and sends it on its own core meanwhile.
 */
async function* readAhead<T>(pages: AsyncGenerator<T>): AsyncGenerator<T> {
  let next = pages.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done) return;
      next = pages.next();
      next.catch(() => undefined); // seen when awaited; not unhandled if the consumer stops first
      yield r.value;
    }
  } finally {
    await pages.return(undefined).catch(() => undefined);
  }
}

/** Scans the keyspace (or `prefix`) and says what fills it. */
export async function scanKeyspace(
  client: Etcd3,
  opts: KeyspaceOptions = {},
): Promise<KeyspaceReport> {
  const t0 = performance.now();
  const prefix = opts.prefix ?? '';
  const start = prefix ? Buffer.from(prefix) : Buffer.from([0]);
  const end = prefix ? prefixEnd(Buffer.from(prefix)) : Buffer.from([0]);
  const tally = new KeyspaceTally(opts.top ?? 20);
  let revision: string | undefined;
  let pages = 0;
  let keysWithLease = 0;
  for await (const page of readAhead(
    rangePages(client, {
      start,
      end,
      windowed: true,
      ...(opts.pageBytes ? { pageBytes: opts.pageBytes } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    }),
  )) {
    revision = page.revision;
    pages++;
    for (const kv of page.kvs) {
      tally.add(kv);
      if (kv.lease && kv.lease !== '0') keysWithLease++;
    }
    opts.onProgress?.({ keys: tally.keys, bytes: tally.bytes });
  }
  if (opts.signal?.aborted) throw new CancelledError('Reading the keyspace');
  if (revision === undefined) {
    // Nothing in range: the revision from a count-only read.
    const r = await client.kv.range({ key: start, range_end: end, count_only: true });
    revision = String(r.header.revision);
  }
  const leases = tally.leaseRows();
  const [total, comp] = await Promise.all([
    client.leaseClient.leaseLeases().then(
      (r) => r.leases.length,
      () => undefined,
    ),
    compaction(client, Number(revision)),
    leaseTtls(client, leases.slice(0, opts.leaseTtls ?? 20), opts.signal),
  ]);
  return {
    prefix,
    revision,
    compaction: comp,
    keys: tally.keys,
    bytes: tally.bytes,
    valueBytes: tally.valueBytes,
    resources: tally.resourceRows(),
    namespaces: tally.namespaceRows(),
    top: tally.topKeys(),
    leases: {
      ...(total !== undefined ? { total } : {}),
      keysWithLease,
      list: leases.slice(0, 100),
    },
    secrets: tally.secrets,
    ...(tally.folded ? { folded: true } : {}),
    pages,
    elapsedMs: Math.round(performance.now() - t0),
  };
}

/** What fills the space, in short (for the NOSPACE rescue and the tree): bytes by resource. */
export interface KeyspaceSummary {
  revision: string;
  keys: number;
  bytes: number;
  /** Largest first, at most `top`. */
  resources: Array<{ resource: string; keys: number; bytes: number }>;
  /** The largest keys: key, resource and bytes (key plus value). */
  largest: Array<{ key: string; resource: string; bytes: number }>;
}

/** The keyspace's bytes by resource and its largest keys (one scan; see scanKeyspace). */
export async function keyspaceSummary(
  client: Etcd3,
  opts: { top?: number; prefix?: string; signal?: AbortSignal } = {},
): Promise<KeyspaceSummary> {
  const r = await scanKeyspace(client, { ...opts, top: opts.top ?? 10, leaseTtls: 0 });
  return summaryOf(r, opts.top ?? 10);
}

export function summaryOf(r: KeyspaceReport, top = 10): KeyspaceSummary {
  return {
    revision: r.revision,
    keys: r.keys,
    bytes: r.bytes,
    resources: r.resources
      .slice(0, top)
      .map(({ resource, keys, bytes }) => ({ resource, keys, bytes })),
    largest: r.top.slice(0, top).map(({ key, resource, bytes }) => ({ key, resource, bytes })),
  };
}

/** "Top consumer: events, 16 MB of 30 MB (53%) in 60000 keys": the tree's tooltip line. */
export function topConsumerLine(s: KeyspaceSummary): string {
  const top = s.resources[0];
  if (!top) return `Keyspace: empty at revision ${s.revision}`;
  const pct = s.bytes > 0 ? Math.round((100 * top.bytes) / s.bytes) : 0;
  return `Top consumer: ${printable(top.resource)}, ${humanBytes(top.bytes)} of ${humanBytes(s.bytes)} (${pct}%) in ${top.keys} keys`;
}
