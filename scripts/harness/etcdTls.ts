/**
 * A real etcd serving mutual TLS with certificates from our own generator, issued as each
 * member's loopback address becomes known (integration tests, the editor tier and the bench).
 */
import { join } from 'node:path';
import type { Cluster, Host } from '../../src/core/inventory/types';
import { generateCertificateSet } from '../../src/core/pki/set';
import { startEtcdCluster, type EtcdCluster, type EtcdClusterOptions } from './etcd';
import { cluster, host } from './inventory';

/** The admin client files of a generated set. */
export const admin = (dir: string) => ({
  caFile: join(dir, 'ca.pem'),
  certFile: join(dir, 'client/admin.pem'),
  keyFile: join(dir, 'client/admin-key.pem'),
});

/** The `--cacert --cert --key` flags of etcdctl and curl for client TLS files. */
export const tlsFlags = (tls: { caFile: string; certFile: string; keyFile: string }): string[] => [
  '--cacert',
  tls.caFile,
  '--cert',
  tls.certFile,
  '--key',
  tls.keyFile,
];

/** Starts a real etcd whose member certificates come from our generator, as each address is known. */
export async function etcdWithOurCerts(
  dir: string,
  n: 1 | 3 | 5,
  opts: {
    names?: string[];
    pki?: Partial<Cluster['pki']>;
    extraClientIp?: (a: string, i: number) => string | undefined;
    /** Runs before each generation, e.g. to import a CA. */
    beforeGenerate?: (c: Cluster) => Promise<unknown>;
    /** Called with each started cluster, so the caller can stop it. */
    track?: (c: EtcdCluster) => void;
    extra?: Pick<EtcdClusterOptions, 'extraArgs' | 'memberArgs' | 'startTimeoutMs' | 'samePorts'>;
  } = {},
) {
  const hosts: Host[] = [];
  const etcd: EtcdCluster = await startEtcdCluster({
    ...(opts.extra ?? {}),
    members: n,
    names: opts.names ?? Array.from({ length: n }, (_, i) => `m-${i + 1}`),
    ...(opts.extraClientIp ? { extraClientIp: opts.extraClientIp } : {}),
    tls: async (name, _i, address) => {
      hosts.push(host(name, address));
      const c = cluster(dir, hosts, opts.pki);
      await opts.beforeGenerate?.(c);
      await generateCertificateSet(c);
      return {
        caFile: join(dir, 'ca.pem'),
        certFile: join(dir, name, 'server.pem'),
        keyFile: join(dir, name, 'server-key.pem'),
        peerCertFile: join(dir, name, 'peer.pem'),
        peerKeyFile: join(dir, name, 'peer-key.pem'),
      };
    },
  });
  opts.track?.(etcd);
  return { etcd, cluster: withMemberPorts(cluster(dir, hosts, opts.pki), etcd) };
}

/** `c` with the ports its members listen on, when they share them (one member, or samePorts). */
export function withMemberPorts(c: Cluster, etcd: EtcdCluster): Cluster {
  const [m0, ...rest] = etcd.members;
  if (!m0 || rest.some((m) => m.clientPort !== m0.clientPort || m.peerPort !== m0.peerPort))
    return c;
  return { ...c, etcd: { ...c.etcd, clientPort: m0.clientPort, peerPort: m0.peerPort } };
}
