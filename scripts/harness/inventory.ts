/**
 * Inventory objects built in code (no file, no process): a host and a cluster with the
 * defaults the parser gives, and a running harness cluster's k3s-etcd.yaml, for the etcd harness,
 * benchmarks and tests (test/fixtures re-exports them).
 */
import type { Cluster, Host } from '../../src/core/inventory/types';
import type { EtcdCluster } from './etcd';
import { etcdDefaults, k3sDefaults } from '../../src/core/inventory/parse';

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
