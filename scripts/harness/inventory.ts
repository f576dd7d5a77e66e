/**
 * Inventory objects built in code (no file, no process): a host and a cluster with the
 * defaults the parser gives, for the etcd harness, benchmarks and tests (test/fixtures re-exports them).
 */
import type { Cluster, Host } from '../../src/core/inventory/types';
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
