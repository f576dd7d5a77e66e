/**
 * The last compaction's revision without /metrics (etcd 3.4's status does not report it): the
 * oldest revision a range can still be read at, found by bisection over count-only ranges
 * (about log2(revision) small reads). etcd answers "required revision has been compacted" below it.
 */
import type { Etcd3 } from 'etcd3';
import { errorMessage } from '../errors';

const compacted = (err: unknown) => /revision has been compacted/i.test(errorMessage(err));

/** The oldest readable revision at or below `revision`: 1 when nothing was ever compacted. */
export async function oldestReadableRevision(client: Etcd3, revision: number): Promise<number> {
  const readable = async (rev: number) => {
    try {
      await client.kv.range({
        key: Buffer.from('compact_rev_key'),
        revision: String(rev),
        count_only: true,
      });
      return true;
    } catch (err) {
      if (compacted(err)) return false;
      throw err;
    }
  };
  if (await readable(1)) return 1;
  let lo = 1; // not readable
  let hi = revision; // readable
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await readable(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
