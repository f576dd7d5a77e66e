/**
 * The space a performance check leaves behind. Deleting its keys frees nothing on disk: etcd keeps
 * every revision until the history is compacted, and bbolt keeps the freed pages in its file (and
 * in every snapshot) until each member is defragmented. After a run the front ends say so, with
 * the sizes and a way to give the space back (compactAndDefrag, or etcdctl's commands).
 */
import { humanBytes } from '../../shared/etcdTypes';
import type { EtcdTls } from '../etcd/client';
import { openRpcs, type EtcdRpc } from '../etcd/rpc';
import type { CompactDefragResult } from './perf';

/** The largest member's database file and how much of it is in use. */
export interface DbSpace {
  dbBytes: number;
  inUseBytes: number;
}

/** The largest database among the members that answer (0 bytes when none does). */
export async function dbSpace(
  endpoints: readonly string[],
  conn: { timeoutMs: number; tls?: EtcdTls },
): Promise<DbSpace> {
  let largest: DbSpace = { dbBytes: 0, inUseBytes: 0 };
  let clients: EtcdRpc[] = [];
  try {
    // One small gRPC client per member (etcd/rpc.ts, no etcd3), asked one after the other.
    clients = await openRpcs(endpoints, conn);
    for (const client of clients) {
      try {
        const s = await client.status();
        if (Number(s.dbSize) > largest.dbBytes)
          largest = { dbBytes: Number(s.dbSize), inUseBytes: Number(s.dbSizeInUse) };
      } catch {
        // not answering: not counted
      }
    }
  } catch {
    // the TLS files cannot be read: nothing counted
  } finally {
    for (const c of clients) c.close();
  }
  return largest;
}

/** Whether compaction and defragmentation of every member both happened. */
export function spaceReclaimed(m: CompactDefragResult | undefined): boolean {
  return (
    m !== undefined && m.compacted && m.defragmented.length > 0 && m.defragmented.every((d) => d.ok)
  );
}

/**
 * What the check left behind, in one sentence for the CLI and the editor: the database file's size
 * (when it could be read), and why it stays that large.
 */
export function keptSpaceText(revision: string, space: DbSpace | undefined): string {
  // Before compaction the deleted keys' history still counts as in use; after it, without
  // defragmentation, the file stays as large with little of it in use.
  const inUse =
    space && space.inUseBytes < space.dbBytes * 0.9
      ? ` with only ${humanBytes(space.inUseBytes)} of it in use`
      : '';
  const file =
    space && space.dbBytes > 0
      ? `the database file is ${humanBytes(space.dbBytes)}${inUse}`
      : 'the database file keeps its size';
  return (
    `The check's writes still take space: ${file}, and every snapshot taken now is as large, ` +
    `until the history is compacted at revision ${revision} and every member defragmented.`
  );
}

/** After compactAndDefrag: what was done and the database's size now, or what failed. */
export function reclaimedText(res: CompactDefragResult, after: DbSpace | undefined): string {
  const failed = res.defragmented.filter((d) => !d.ok);
  if (!res.compacted || failed.length > 0 || res.defragmented.length === 0) {
    const why = [
      res.compacted ? undefined : `compaction: ${res.compactError ?? 'not done'}`,
      ...failed.map((f) => `${f.endpoint}: ${f.error ?? 'failed'}`),
      res.defragmented.length === 0 ? 'no member was defragmented' : undefined,
    ].filter(Boolean);
    return `Compaction and defragmentation did not finish (${why.join('; ')}). Try again once every member answers.`;
  }
  return (
    `Compacted at revision ${res.revision} and defragmented ${res.defragmented.length} member(s)` +
    (after && after.dbBytes > 0 ? `: the database file is ${humanBytes(after.dbBytes)} now.` : '.')
  );
}
