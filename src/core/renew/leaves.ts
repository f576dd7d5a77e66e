/**
 * Which leaves a renewal re-issues and the new ones, in memory: every member's server and peer
 * certificates (or only the members named), with `k3s` the K3s datastore client certificate too;
 * each re-issued under the cluster's CA (or, for a CA rotation, the issuer it is given) with the
 * SANs and usages the inventory calls for now. Nothing is written here: the plan shows these very
 * certificates, and the run writes and deploys them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { K3sEtcdError } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { etcdHosts, k3sServers, selectHosts } from '../inventory/select';
import { parseCertificate } from '../pki/inspect';
import { issueLeaf, type Issuer, type Validity } from '../pki/issue';
import type { KeyAlgorithm } from '../inventory/types';
import { desiredLeaves, type LeafSpec } from '../pki/set';

/** What a renewal covers: the members (their hosts) and, with `--k3s`, the K3s servers. */
export interface RenewScope {
  members: Host[];
  /** Empty unless the K3s datastore client certificate is renewed. */
  k3sServers: Host[];
  specs: LeafSpec[];
}

/** One leaf as it is in the workspace and as re-issued. */
export interface RenewLeaf {
  /** Relative to the pki folder: `edge-1/server.pem`, `client/k3s.pem`. */
  path: string;
  keyPath: string;
  /** "edge-1 server", "k3s client". */
  name: string;
  kind: 'server' | 'peer' | 'client';
  /** The member whose certificate it is (server and peer). */
  member?: string;
  cn: string;
  sans: string[];
  /** The workspace's certificate now, if there is one. */
  old?: { sha256: string; notAfter: string };
  /** The new certificate (its key never leaves memory until the run writes it). */
  certPem: string;
  keyPem: string;
  sha256: string;
  notAfter: string;
}

/** The members named (member or host names; every member when none) and, with `k3s`, the servers. */
export function renewScope(cluster: Cluster, members: readonly string[], k3s: boolean): RenewScope {
  if (etcdHosts(cluster).length === 0)
    throw new K3sEtcdError(
      'usage',
      `Cluster ${cluster.name} has no etcd member in k3s-etcd.yaml: nothing to renew.`,
    );
  const hosts = selectHosts(cluster, members);
  let servers: Host[] = [];
  if (k3s) {
    if (cluster.datastore !== 'external-etcd')
      throw new K3sEtcdError(
        'usage',
        `Cluster ${cluster.name} is not K3s on this external etcd (datastore: ${cluster.datastore}): there is no K3s datastore client certificate to renew; leave out --k3s.`,
      );
    servers = k3sServers(cluster);
    if (servers.length === 0)
      throw new K3sEtcdError(
        'usage',
        `Cluster ${cluster.name} has no host with the role k3s-server in k3s-etcd.yaml: leave out --k3s.`,
      );
  }
  const names = new Set(hosts.map((h) => h.memberName));
  const specs = desiredLeaves(cluster).filter((s) =>
    s.file.kind === 'client'
      ? k3s && s.file.path === 'client/k3s.pem'
      : s.file.member !== undefined && names.has(s.file.member),
  );
  return { members: hosts, k3sServers: servers, specs };
}

const day = (iso: string) => iso.slice(0, 10);

/**
 * Why a renewal under `ca` is refused: the CA ends before the new leaves would (they would end
 * with it). Undefined when the CA outlives them.
 */
export function caRefusal(ca: X509Certificate, validity: Validity): string | undefined {
  const caEnd = new Date(ca.validTo);
  if (caEnd.getTime() >= validity.notAfter.getTime()) return undefined;
  return `the CA itself expires on ${day(caEnd.toISOString())}, before the renewed certificates would (${day(validity.notAfter.toISOString())}): renewed under it they would stop working with it. Rotate the CA instead (a new CA trusted beside the old one, then every certificate re-issued under it); nothing was changed`;
}

async function current(dir: string, path: string): Promise<RenewLeaf['old']> {
  try {
    const c = parseCertificate(await readFile(join(dir, path), 'utf8'));
    return { sha256: c.fingerprint256, notAfter: new Date(c.validTo).toISOString() };
  } catch {
    return undefined;
  }
}

/** Issues every leaf of `specs` under `issuer`, in memory. */
export async function issueLeaves(
  cluster: Cluster,
  specs: readonly LeafSpec[],
  issuer: Issuer,
  algorithm: KeyAlgorithm,
  validity: Validity,
): Promise<RenewLeaf[]> {
  const out: RenewLeaf[] = [];
  for (const s of specs) {
    const pair = await issueLeaf(
      { cn: s.cn, sans: s.sans, usages: s.usages, algorithm, validity },
      issuer,
    );
    const cert = parseCertificate(pair.certPem);
    const old = await current(cluster.pki.dir, s.file.path);
    out.push({
      path: s.file.path,
      keyPath: s.file.keyPath,
      name: s.file.name,
      kind: s.file.kind as RenewLeaf['kind'],
      ...(s.file.member ? { member: s.file.member } : {}),
      cn: s.cn,
      sans: s.sans,
      ...(old ? { old } : {}),
      certPem: pair.certPem,
      keyPem: pair.keyPem,
      sha256: cert.fingerprint256,
      notAfter: new Date(cert.validTo).toISOString(),
    });
  }
  return out;
}
