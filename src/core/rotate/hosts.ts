/**
 * What each host gets in a rotation's phase and the reads around it: a member's files (its
 * leaves, the phase's new ones first, beside the phase's CA file), the K3s datastore files, the
 * rolling engine's jobs, the member table, and the old CA before phase 1.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { K3sEtcdError } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { parseCertificate } from '../pki/inspect';
import { CA_FILES, assertUsableCa } from '../pki/set';
import type { RollingJob } from '../rolling/engine';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { planMemberCertificates, workspaceMemberCerts } from '../provision/memberCerts';
import type { DatastoreClientFiles } from '../k3s/datastoreSteps';
import type { RenewLeaf } from '../renew/leaves';

/** What a phase gives its hosts: the CA file, the leaves re-issued now, the members to go. */
export interface PhaseFiles {
  leaves: RenewLeaf[];
  caFile: Buffer;
  members: Host[];
}

export const refused = (why: string) =>
  new K3sEtcdError('provision-refused', `Not rotated: ${why}. Nothing was changed.`);

export const under = (pem: string | undefined, ca: X509Certificate) => {
  if (pem === undefined) return false;
  try {
    const c = parseCertificate(pem);
    return c.checkIssued(ca) && c.verify(ca.publicKey);
  } catch {
    return false;
  }
};
export const text = (path: string) => readFile(path, 'utf8').catch(() => undefined);

/** A member's files this phase: its leaves (the planned new ones first, else the workspace's). */
async function memberFiles(cluster: Cluster, host: Host, plan: PhaseFiles) {
  const ws = await workspaceMemberCerts(cluster, host);
  const leaf = (kind: 'server' | 'peer') =>
    plan.leaves.find((l) => l.member === host.memberName && l.kind === kind);
  const s = leaf('server');
  const p = leaf('peer');
  return {
    ...ws,
    ca: plan.caFile,
    ...(s ? { server: Buffer.from(s.certPem), serverKey: Buffer.from(s.keyPem) } : {}),
    ...(p ? { peer: Buffer.from(p.certPem), peerKey: Buffer.from(p.keyPem) } : {}),
  };
}

export async function k3sFiles(cluster: Cluster, plan: PhaseFiles): Promise<DatastoreClientFiles> {
  const l = plan.leaves.find((x) => x.path === 'client/k3s.pem');
  if (l) return { ca: plan.caFile, cert: Buffer.from(l.certPem), key: Buffer.from(l.keyPem) };
  const dir = cluster.pki.dir;
  return {
    ca: plan.caFile,
    cert: await readFile(join(dir, 'client/k3s.pem')),
    key: await readFile(join(dir, 'client/k3s-key.pem')),
  };
}

export function memberJobs(cluster: Cluster, plan: PhaseFiles, ssh: SshContext): RollingJob[] {
  return plan.members.map((host) => ({
    host: host.name,
    member: host.memberName,
    open: sshOpener(cluster, host, ssh),
    plan: async () => planMemberCertificates(cluster, host, await memberFiles(cluster, host, plan)),
  }));
}

/** The old CA alone from ca.pem (before phase 1), refused when it is not one usable CA. */
export async function currentCa(
  cluster: Cluster,
  now: Date,
): Promise<{ pem: string; c: X509Certificate }> {
  const path = join(cluster.pki.dir, CA_FILES.cert);
  const pem = await text(path);
  if (pem === undefined)
    throw new K3sEtcdError(
      'certs-missing',
      `${path} is missing: generate the certificates first (\`k3s-etcd certs generate\`).`,
    );
  if ((pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length !== 1)
    throw refused(
      `${path} holds more than one certificate but no rotation is under way (no rotation.json): put the cluster's one CA back in it first`,
    );
  const c = parseCertificate(pem);
  assertUsableCa(c, path, now);
  return { pem, c };
}
