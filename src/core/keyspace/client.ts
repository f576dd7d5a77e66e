/** A client on the first of `endpoints` that answers, for a read-only pass over the keyspace. */
import type { Etcd3 } from 'etcd3';
import { K3sEtcdError } from '../errors';
import type { EtcdTls } from '../etcd/client';
import { firstAnswering } from '../etcd/connection';

/** Per request: a page of 2 MiB through TLS on a busy member takes well under this. */
export const KEYSPACE_TIMEOUT_MS = 15_000;

export async function answeringClient(
  endpoints: readonly string[],
  opts: { tls?: EtcdTls; timeoutMs?: number } = {},
): Promise<{ client: Etcd3; endpoint: string }> {
  const r = await firstAnswering(endpoints, {
    timeoutMs: opts.timeoutMs ?? KEYSPACE_TIMEOUT_MS,
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  if ('client' in r) return r;
  throw new K3sEtcdError(
    'etcd-unreachable',
    `No etcd member answered a read: ${r.problems.join('; ')}. Check that etcd runs and the TLS files are right (k3s-etcd health).`,
  );
}
