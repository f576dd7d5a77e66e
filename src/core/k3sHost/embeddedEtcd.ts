/**
 * K3s's embedded etcd as it lies on a K3s server: its certificates and its generated etcd
 * config. Read over SSH with sudo and kept in memory (never written to the workspace): K3s owns
 * these files and regenerates them, so we only read them.
 */
import { K3sEtcdError } from '../errors';
import type { EtcdTlsPem } from '../etcd/client';
import type { HostTransport } from '../plan/runner';
import { shellQuote } from '../ssh/quote';

export const K3S_ETCD_TLS_DIR = '/var/lib/rancher/k3s/server/tls/etcd';
/** The client TLS the article uses for etcdctl against K3s's etcd. */
export const K3S_ETCD_CLIENT_FILES = {
  ca: `${K3S_ETCD_TLS_DIR}/server-ca.crt`,
  cert: `${K3S_ETCD_TLS_DIR}/server-client.crt`,
  key: `${K3S_ETCD_TLS_DIR}/server-client.key`,
} as const;
/** The etcd config K3s writes before it starts etcd (YAML, etcd's --config-file format). */
export const K3S_ETCD_CONFIG = '/var/lib/rancher/k3s/server/db/etcd/config';

const SPLIT = '==k3s-etcd-file==';

/** K3s's etcd client certificate, CA and key from `host`, in memory. */
export async function readK3sEtcdTls(
  session: Pick<HostTransport, 'exec'>,
  host: string,
  signal?: AbortSignal,
): Promise<EtcdTlsPem> {
  const files = [K3S_ETCD_CLIENT_FILES.ca, K3S_ETCD_CLIENT_FILES.cert, K3S_ETCD_CLIENT_FILES.key];
  const r = await session.exec(
    files.map((f) => `cat ${shellQuote(f)}`).join(` && echo ${SPLIT} && `),
    {
      sudo: true,
      ...(signal ? { signal } : {}),
    },
  );
  const parts = r.stdout.split(`${SPLIT}\n`);
  if (r.code !== 0 || parts.length !== 3) {
    throw new K3sEtcdError(
      'certs-missing',
      `${host} has no readable K3s etcd certificates in ${K3S_ETCD_TLS_DIR} (${r.stderr.trim() || `exit ${r.code}`}): is it a K3s server with embedded etcd? Or name client TLS files under etcd.tls in the inventory.`,
    );
  }
  const [ca, cert, key] = parts as [string, string, string];
  return { ca, cert, key, source: `${host}:${K3S_ETCD_CLIENT_FILES.cert}` };
}

/** The URL settings of K3s's etcd config (flat `key: value` lines), or undefined when absent. */
export async function readK3sEtcdConfig(
  session: Pick<HostTransport, 'exec'>,
  signal?: AbortSignal,
): Promise<Record<string, string> | undefined> {
  const r = await session.exec(`cat ${shellQuote(K3S_ETCD_CONFIG)}`, {
    sudo: true,
    ...(signal ? { signal } : {}),
  });
  if (r.code !== 0) return undefined;
  return Object.fromEntries(
    r.stdout
      .split('\n')
      .map((l) => /^([a-z-]+-urls):\s*(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] as string, (m[2] as string).replace(/^["']|["']$/g, '')]),
  );
}
