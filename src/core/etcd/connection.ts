/**
 * How to reach a cluster's etcd: every member's client URL, and the client TLS files: those the
 * inventory names (etcd.tls), else the generated admin certificate in the pki folder.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError } from '../errors';
import type { Cluster } from '../inventory/types';
import { clientEndpoints, clientUrl, etcdHosts } from '../inventory/select';
import type { Etcd3 } from 'etcd3';
import { createEndpointClient, type EtcdTls } from './client';
import { errorMessage } from '../errors';

export interface EtcdConnection {
  cluster: string;
  endpoints: string[];
  tls: EtcdTls;
  /** Where the TLS files come from, for messages. */
  tlsSource: 'inventory' | 'generated admin certificate';
}

export function adminTls(cluster: Cluster): EtcdTls {
  return {
    caFile: join(cluster.pki.dir, 'ca.pem'),
    certFile: join(cluster.pki.dir, 'client', 'admin.pem'),
    keyFile: join(cluster.pki.dir, 'client', 'admin-key.pem'),
  };
}

const readable = (f: string) =>
  access(f).then(
    () => true,
    () => false,
  );

/**
 * Throws `certs-missing` when the cluster has neither inventory TLS files nor a generated admin
 * certificate, so the editor can offer "Generate Certificate Set".
 */
export async function connectionFor(cluster: Cluster): Promise<EtcdConnection> {
  const endpoints = clientEndpoints(cluster);
  if (cluster.etcd.tls)
    return { cluster: cluster.name, endpoints, tls: cluster.etcd.tls, tlsSource: 'inventory' };
  const tls = adminTls(cluster);
  const present = await Promise.all(Object.values(tls).map(readable));
  if (!present.every(Boolean)) {
    throw new K3sEtcdError(
      'certs-missing',
      `Cluster ${cluster.name} has no admin client certificate yet (${join(cluster.pki.dir, 'client', 'admin.pem')}): generate certificates first, or name the client TLS files under etcd.tls in the inventory.`,
    );
  }
  return { cluster: cluster.name, endpoints, tls, tlsSource: 'generated admin certificate' };
}

/**
 * A client on the first of `endpoints` that serves a quorum read (a count-only range), or what
 * each endpoint answered when none did. `timeoutMs` is the client's dial and per-request deadline.
 */
export async function firstAnswering(
  endpoints: readonly string[],
  opts: { tls?: EtcdTls; timeoutMs: number; maxReceiveBytes?: number },
): Promise<{ client: Etcd3; endpoint: string } | { problems: string[] }> {
  const problems: string[] = [];
  for (const endpoint of endpoints) {
    const client = await createEndpointClient(endpoint, {
      timeoutMs: opts.timeoutMs,
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.maxReceiveBytes ? { maxReceiveBytes: opts.maxReceiveBytes } : {}),
    });
    try {
      await client.kv.range({ key: Buffer.from('health'), count_only: true });
      return { client, endpoint };
    } catch (err) {
      problems.push(`${endpoint}: ${errorMessage(err)}`);
      client.close();
    }
  }
  return { problems };
}

/**
 * A client on the first member of `cluster` (other than the host `except`) that serves a
 * quorum read, and its endpoint. `timeoutMs` is the client's dial and per-request deadline.
 */
export async function healthyClient(
  cluster: Cluster,
  opts: { except?: string; timeoutMs?: number; maxReceiveBytes?: number } = {},
): Promise<{ client: Etcd3; endpoint: string }> {
  const conn = await connectionFor(cluster);
  const endpoints = etcdHosts(cluster)
    .filter((h) => h.name !== opts.except)
    .map((h) => clientUrl(cluster, h));
  const r = await firstAnswering(endpoints, {
    tls: conn.tls,
    timeoutMs: opts.timeoutMs ?? 3000,
    ...(opts.maxReceiveBytes ? { maxReceiveBytes: opts.maxReceiveBytes } : {}),
  });
  if ('client' in r) return r;
  throw new K3sEtcdError(
    'etcd-unreachable',
    `No healthy member of ${cluster.name} answered${opts.except ? ` (besides ${opts.except})` : ''}: ${r.problems.join('; ')}`,
  );
}
