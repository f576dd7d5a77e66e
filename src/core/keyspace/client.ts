/** A client on the first of `endpoints` that answers, for a read-only pass over the keyspace. */
import type { Etcd3 } from 'etcd3';
import { K3sEtcdError, errorMessage } from '../errors';
import { createEndpointClient, type EtcdTls } from '../etcd/client';

/** Per request: a page of 2 MiB through TLS on a busy member takes well under this. */
export const KEYSPACE_TIMEOUT_MS = 15_000;

export async function answeringClient(
  endpoints: readonly string[],
  opts: { tls?: EtcdTls; timeoutMs?: number } = {},
): Promise<{ client: Etcd3; endpoint: string }> {
  const problems: string[] = [];
  for (const endpoint of endpoints) {
    const client = await createEndpointClient(endpoint, {
      timeoutMs: opts.timeoutMs ?? KEYSPACE_TIMEOUT_MS,
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    try {
      await client.kv.range({ key: Buffer.from('health'), count_only: true });
      return { client, endpoint };
    } catch (err) {
      problems.push(`${endpoint}: ${errorMessage(err)}`);
      client.close();
    }
  }
  throw new K3sEtcdError(
    'etcd-unreachable',
    `No etcd member answered a read: ${problems.join('; ')}. Check that etcd runs and the TLS files are right (k3s-etcd health).`,
  );
}
