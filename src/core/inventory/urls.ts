/** etcd URLs derive from the host address and the cluster's ports. */
import { isIPv6 } from 'node:net';
import type { Cluster, Host } from './types';

export function hostPort(address: string, port: number): string {
  return `${isIPv6(address) ? `[${address}]` : address}:${port}`;
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

export function clientEndpoints(cluster: Cluster): string[] {
  return etcdHosts(cluster).map((h) => clientUrl(cluster, h));
}

export function sshTarget(host: Host): string {
  return `${host.user}@${hostPort(host.address, host.port)}`;
}
