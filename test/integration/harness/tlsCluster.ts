/**
 * A real etcd serving mutual TLS with certificates from our own generator, issued as each
 * member's loopback address becomes known; plus small builders for inventory objects.
 */
import { join } from 'node:path';
import { after } from 'node:test';
import type { Cluster, Host } from '../../../src/core/inventory/types';
import { etcdDefaults, k3sDefaults } from '../../../src/core/inventory/parse';
import { generateCertificateSet } from '../../../src/core/pki/set';
import { makeTempDir, removeTempDir } from '../../support/processes';
import { startEtcdCluster, type EtcdCluster, type EtcdClusterOptions } from './etcd';

export function host(name: string, address: string, extra: Partial<Host> = {}): Host {
  return {
    name,
    memberName: name,
    address,
    sans: [],
    port: 22,
    user: 'root',
    ssh: {},
    roles: ['etcd'],
    line: 1,
    ...extra,
  };
}

export function cluster(dir: string, hosts: Host[], pki: Partial<Cluster['pki']> = {}): Cluster {
  return {
    name: 'edge-t',
    datastore: 'external-etcd',
    etcd: etcdDefaults('edge-t', 'v3.4.23'),
    k3s: k3sDefaults(dir),
    pki: { dir, caValidityDays: 3650, leafValidityDays: 1825, ...pki },
    hosts,
    line: 1,
  };
}

/** The admin client files of a generated set. */
export const admin = (dir: string) => ({
  caFile: join(dir, 'ca.pem'),
  certFile: join(dir, 'client/admin.pem'),
  keyFile: join(dir, 'client/admin-key.pem'),
});

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

/**
 * A k3s-etcd.yaml naming a running harness cluster (members sharing their ports): cluster
 * edge-t, certificates in `pki` (relative to the file), each member with `roles`.
 */
export function harnessInventory(
  etcd: EtcdCluster,
  opts: { pki: string; roles?: string[] },
): string {
  const m0 = etcd.members[0]!;
  const roles = (opts.roles ?? ['etcd']).join(', ');
  return [
    'version: 1',
    'clusters:',
    '  - name: edge-t',
    `    etcd: { version: v3.4.23, clientPort: ${m0.clientPort}, peerPort: ${m0.peerPort} }`,
    `    pki: { dir: ${opts.pki} }`,
    '    hosts:',
    ...etcd.members.map(
      (m) => `      - { name: ${m.name}, address: ${m.address}, roles: [${roles}] }`,
    ),
    '',
  ].join('\n');
}

/**
 * Temp dirs and clusters a test file makes, all removed in one `after` hook (also on failure):
 * `const { tempDir, track } = testScope('k3s-etcd-pki-');`
 */
export function testScope(prefix: string): {
  tempDir: () => Promise<string>;
  track: (c: EtcdCluster) => void;
} {
  const dirs: string[] = [];
  const clusters: EtcdCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    await Promise.all(dirs.map((d) => removeTempDir(d)));
  });
  return {
    tempDir: async () => {
      const d = await makeTempDir(prefix);
      dirs.push(d);
      return d;
    },
    track: (c) => {
      clusters.push(c);
    },
  };
}
