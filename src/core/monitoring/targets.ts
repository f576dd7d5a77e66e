/**
 * What Prometheus scrapes for a cluster: each member's metrics address with the stable labels
 * (cluster, member), the scheme, and the client TLS files (paths only: a key never enters an
 * exported file). Names and addresses come from the inventory and are checked here again before
 * they reach YAML, JSON, PromQL or a shell line: the renderers may rely on them.
 */
import { join } from 'node:path';
import { K3sEtcdError } from '../errors';
import { isIpOrHostname } from '../inventory/addressFormat';
import { etcdHosts, hostPort } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { CA_FILES, MONITORING_CLIENT } from '../pki/set';

/** A cluster or member name as a label value: the inventory schema's name pattern. */
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export interface MonitoringTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface MemberTarget {
  member: string;
  address: string;
  /** `host:port` (IPv6 in brackets). */
  target: string;
}

export interface ScrapeSpec {
  cluster: string;
  /** `k3s-etcd-<cluster>`: the Prometheus job. */
  job: string;
  scheme: 'http' | 'https';
  port: number;
  /** Where the metrics come from, in words (the client port with TLS, or the listener). */
  via: 'client-tls' | 'metrics-listener';
  /** Undefined for the plain-HTTP metrics listener. */
  tls?: MonitoringTls;
  members: MemberTarget[];
}

export function refuse(message: string): K3sEtcdError {
  return new K3sEtcdError('monitoring-refused', `${message}. Nothing was exported.`);
}

export function checkedName(value: string, what: string): string {
  if (!LABEL_VALUE.test(value))
    throw refuse(
      `${what} ${JSON.stringify(value)} cannot be a Prometheus label value here (letters, digits, '-', '_', '.'; rename it in the inventory)`,
    );
  return value;
}

/** The monitoring client's files in the workspace certificate set. */
export function monitoringTls(cluster: Cluster): MonitoringTls {
  // Any other character is quoted where it lands (YAML, a shell word); a line break or another
  // control character would end a comment line or a YAML scalar's line, so none is accepted.
  if (/[\u0000-\u001f\u007f]/.test(cluster.pki.dir))
    throw refuse(
      `the certificate folder ${JSON.stringify(cluster.pki.dir)} has a control character in its path: move it (pki.dir)`,
    );
  return {
    caFile: join(cluster.pki.dir, CA_FILES.cert),
    certFile: join(cluster.pki.dir, MONITORING_CLIENT.file.path),
    keyFile: join(cluster.pki.dir, MONITORING_CLIENT.file.keyPath),
  };
}

/**
 * The scrape of every member: etcd.metricsPort (the plain-HTTP metrics listener, or HTTPS when
 * etcd.metricsScheme says so) when set, else /metrics on the client port with mutual TLS.
 */
export function scrapeSpec(cluster: Cluster): ScrapeSpec {
  const name = checkedName(cluster.name, 'the cluster name');
  const hosts = etcdHosts(cluster);
  if (hosts.length === 0) throw refuse(`cluster ${name} has no host with the etcd role`);
  const { metricsPort, metricsScheme, clientPort } = cluster.etcd;
  const port = metricsPort ?? clientPort;
  const scheme = metricsPort ? (metricsScheme ?? 'http') : 'https';
  for (const p of [port])
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw refuse(`port ${p} is not a TCP port`);
  const members = hosts.map((h) => {
    checkedName(h.memberName, 'the member name');
    if (!isIpOrHostname(h.address))
      throw refuse(
        `the address ${JSON.stringify(h.address)} of ${h.name} is not an IP or hostname`,
      );
    return { member: h.memberName, address: h.address, target: hostPort(h.address, port) };
  });
  return {
    cluster: name,
    job: `k3s-etcd-${name}`,
    scheme,
    port,
    via: metricsPort ? 'metrics-listener' : 'client-tls',
    ...(scheme === 'https' ? { tls: monitoringTls(cluster) } : {}),
    members,
  };
}
