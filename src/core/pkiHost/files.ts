/**
 * Which certificate files the cluster puts on which host, each beside the workspace file it is a
 * copy of: the per-host, per-file inventory `certs check` reads and that a renewal or a CA
 * rotation can build on. An etcd member's host holds the CA and its member's server and peer
 * pairs under /etc/etcd/pki (provisioning writes them); a K3s server of an external-etcd cluster
 * holds the CA and the K3s client pair under /etc/rancher/k3s/etcd (`k3s install` writes them).
 * Pure: nothing is read here.
 */
import { PKI } from '../etcd/memberHost';
import { clientUrl, etcdHosts, k3sServers, peerUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { K3S_DATASTORE_FILES } from '../k3sHost/datastoreFiles';
import { CA_FILES } from '../pki/set';
import type { FileKind } from '../pki/store';

export type DeployedRole = 'etcd' | 'k3s-server';

export interface DeployedFile {
  host: string;
  role: DeployedRole;
  kind: FileKind;
  /** What it is, in words: "CA", "m-1 server", "K3s datastore client". */
  name: string;
  /** Absolute path on the host. */
  hostPath: string;
  /** Its private key on the host (leaves only). */
  hostKeyPath?: string;
  /** The workspace file it is a copy of, relative to the pki folder, `/`-separated. */
  workspacePath: string;
  workspaceKeyPath?: string;
  /** The etcd member whose certificate it is (server and peer). */
  member?: string;
  /** Where the member serves this certificate (its client URL for server, peer URL for peer). */
  servedAt?: string;
}

/** One host's files, in a fixed order: the etcd member's first, then the K3s server's. */
export function deployedFiles(cluster: Cluster, host: Host): DeployedFile[] {
  const out: DeployedFile[] = [];
  const base = { host: host.name };
  if (host.roles.includes('etcd')) {
    const m = host.memberName;
    out.push(
      {
        ...base,
        role: 'etcd',
        kind: 'ca',
        name: 'CA',
        hostPath: `${PKI}/ca.pem`,
        workspacePath: CA_FILES.cert,
      },
      {
        ...base,
        role: 'etcd',
        kind: 'server',
        name: `${m} server`,
        hostPath: `${PKI}/server.pem`,
        hostKeyPath: `${PKI}/server-key.pem`,
        workspacePath: `${m}/server.pem`,
        workspaceKeyPath: `${m}/server-key.pem`,
        member: m,
        servedAt: clientUrl(cluster, host),
      },
      {
        ...base,
        role: 'etcd',
        kind: 'peer',
        name: `${m} peer`,
        hostPath: `${PKI}/peer.pem`,
        hostKeyPath: `${PKI}/peer-key.pem`,
        workspacePath: `${m}/peer.pem`,
        workspaceKeyPath: `${m}/peer-key.pem`,
        member: m,
        servedAt: peerUrl(cluster, host),
      },
    );
  }
  if (host.roles.includes('k3s-server') && cluster.datastore === 'external-etcd') {
    out.push(
      {
        ...base,
        role: 'k3s-server',
        kind: 'ca',
        name: 'K3s datastore CA',
        hostPath: K3S_DATASTORE_FILES.ca,
        workspacePath: CA_FILES.cert,
      },
      {
        ...base,
        role: 'k3s-server',
        kind: 'client',
        name: 'K3s datastore client',
        hostPath: K3S_DATASTORE_FILES.cert,
        hostKeyPath: K3S_DATASTORE_FILES.key,
        workspacePath: 'client/k3s.pem',
        workspaceKeyPath: 'client/k3s-key.pem',
      },
    );
  }
  return out;
}

/** The hosts `certs check` reads: every etcd member and every K3s server, in inventory order. */
export function checkedHosts(cluster: Cluster): Host[] {
  const members = new Set(etcdHosts(cluster).map((h) => h.name));
  const servers = new Set(
    cluster.datastore === 'external-etcd' ? k3sServers(cluster).map((h) => h.name) : [],
  );
  return cluster.hosts.filter((h) => members.has(h.name) || servers.has(h.name));
}
