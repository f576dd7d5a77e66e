/**
 * The article's "quick commands" environment: etcdctl pointed at the cluster with its TLS files,
 * for an integrated terminal or a shell profile.
 */
import { K3sEtcdError } from '../errors';
import type { Cluster } from '../inventory/types';
import { shellQuote } from '../ssh/quote';
import { connectionFor } from './connection';

export async function etcdctlEnv(cluster: Cluster): Promise<Record<string, string>> {
  const conn = await connectionFor(cluster);
  if (!('caFile' in conn.tls)) {
    throw new K3sEtcdError(
      'certs-missing',
      `Cluster ${cluster.name} has no client TLS files to point etcdctl at: name them under etcd.tls in k3s-etcd.yaml.`,
    );
  }
  return {
    ETCDCTL_API: '3',
    ETCDCTL_ENDPOINTS: conn.endpoints.join(','),
    ETCDCTL_CACERT: conn.tls.caFile,
    ETCDCTL_CERT: conn.tls.certFile,
    ETCDCTL_KEY: conn.tls.keyFile,
  };
}

/** `export NAME='value'` lines for sh, bash and zsh profiles. */
export function exportLines(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
    .join('\n');
}
