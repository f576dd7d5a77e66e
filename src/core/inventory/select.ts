/**
 * Selecting from the inventory: a cluster by name, hosts by role and by name (each refusal worded once), and what
 * derives from a host's address and the cluster's ports: the etcd URLs and the initial cluster.
 */
import { K3sEtcdError } from '../errors';
import { ipVersion } from './addressFormat';
import type { Cluster, Host, Inventory } from './types';

/** The cluster of that name, or undefined: each front end words its own refusal. */
export function clusterByName(inv: Inventory, name: string): Cluster | undefined {
  return inv.clusters.find((c) => c.name === name);
}

export function hostPort(address: string, port: number): string {
  return `${ipVersion(address) === 6 ? `[${address}]` : address}:${port}`;
}

export function clientUrl(cluster: Cluster, host: Host): string {
  return `https://${hostPort(host.address, cluster.etcd.clientPort)}`;
}

export function peerUrl(cluster: Cluster, host: Host): string {
  return `https://${hostPort(host.address, cluster.etcd.peerPort)}`;
}

/**
 * Where a member serves Prometheus metrics: its own metrics listener when the inventory sets
 * etcd.metricsPort, else /metrics on the client URL.
 */
export function metricsUrl(cluster: Cluster, host: Host): string {
  const { metricsPort, metricsScheme } = cluster.etcd;
  return metricsPort
    ? `${metricsScheme ?? 'http'}://${hostPort(host.address, metricsPort)}/metrics`
    : `${clientUrl(cluster, host)}/metrics`;
}

export function etcdHosts(cluster: Cluster): Host[] {
  return cluster.hosts.filter((h) => h.roles.includes('etcd'));
}

/**
 * Hosts of the cluster without the etcd role, in inventory order: where a replaced member may go
 * (the replacement takes the etcd role from the host it replaces).
 */
export function spareHosts(cluster: Cluster): Host[] {
  return cluster.hosts.filter((h) => !h.roles.includes('etcd'));
}

/** Hosts with the role k3s-server. */
export function k3sServers(cluster: Cluster): Host[] {
  return cluster.hosts.filter((h) => h.roles.includes('k3s-server'));
}

/** The host named `name` (or, with `memberName`, whose etcd member is), else a usage error. */
export function hostNamed(cluster: Cluster, name: string, memberName = false): Host {
  const h = cluster.hosts.find((x) => x.name === name || (memberName && x.memberName === name));
  if (!h) {
    throw new K3sEtcdError(
      'usage',
      `No host "${name}" in cluster ${cluster.name} (hosts: ${cluster.hosts.map((x) => x.name).join(', ')}).`,
    );
  }
  return h;
}

/** The etcd hosts named (host or member names), or all of the cluster's. */
export function selectHosts(cluster: Cluster, names?: readonly string[]): Host[] {
  const members = etcdHosts(cluster);
  if (!names || names.length === 0) return members;
  return names.map((n) => {
    const h = hostNamed(cluster, n, true);
    if (!h.roles.includes('etcd')) {
      throw new K3sEtcdError(
        'usage',
        `Host ${h.name} has no etcd role in k3s-etcd.yaml: add "etcd" to its roles first.`,
      );
    }
    return h;
  });
}

/** The K3s servers named (host names), or all of the cluster's. */
export function selectK3sServers(cluster: Cluster, names?: readonly string[]): Host[] {
  const servers = k3sServers(cluster);
  if (!names || names.length === 0) {
    if (servers.length === 0)
      throw new K3sEtcdError(
        'usage',
        `Cluster ${cluster.name} has no host with the role k3s-server in k3s-etcd.yaml.`,
      );
    return servers;
  }
  return names.map((n) => {
    const h = hostNamed(cluster, n);
    if (!h.roles.includes('k3s-server'))
      throw new K3sEtcdError(
        'usage',
        `Host ${h.name} has no k3s-server role in k3s-etcd.yaml: add it to its roles first.`,
      );
    return h;
  });
}

export function clientEndpoints(cluster: Cluster): string[] {
  return etcdHosts(cluster).map((h) => clientUrl(cluster, h));
}

export function sshTarget(host: Host): string {
  return `${host.user}@${hostPort(host.address, host.port)}`;
}

/** `name=https://addr:2380,...` of every etcd host in the inventory. */
export function initialClusterOf(
  cluster: Cluster,
  hosts: readonly Host[] = etcdHosts(cluster),
): string {
  return hosts.map((h) => `${h.memberName}=${peerUrl(cluster, h)}`).join(',');
}
