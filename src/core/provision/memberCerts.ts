/**
 * A member's certificate files on its host, as plan steps: the CA and the member's server and
 * peer pairs under /etc/etcd/pki (keys 0600 owned by etcd, staged as payloads, never in the
 * script's text). Provisioning writes them with everything else (memberPlan.ts); a certificate
 * renewal writes only them and restarts etcd on them (`planMemberCertificates`), so both give
 * the host the very same files, owners and modes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError } from '../errors';
import { PKI } from '../etcd/memberHost';
import type { Cluster, Host } from '../inventory/types';
import { CA_FILES } from '../pki/set';
import { journalTail } from '../plan/snippets';
import {
  fileStep,
  sha256,
  systemdGuard,
  type HostPlan,
  type Payload,
  type Step,
} from '../plan/steps';

/** What a member's host holds: the CA (or a CA bundle) and its two pairs, as bytes. */
export interface MemberCertFiles {
  ca: Buffer;
  server: Buffer;
  serverKey: Buffer;
  peer: Buffer;
  peerKey: Buffer;
}

/** The step ids etcd restarts on when one of these files changes. */
export const MEMBER_CERT_STEP_IDS = ['ca', 'server', 'server-key', 'peer', 'peer-key'] as const;

/** A file of the workspace's pki folder, or a clear error naming it. */
async function readPki(cluster: Cluster, rel: string): Promise<Buffer> {
  const file = join(cluster.pki.dir, rel);
  try {
    return await readFile(file);
  } catch {
    throw new K3sEtcdError(
      'certs-missing',
      `${file} is missing: generate the certificates first (K3s etcd: Generate Certificates, or \`k3s-etcd certs generate\`).`,
    );
  }
}

/** A member's files from the workspace (the pki folder), or a clear error naming the missing one. */
export async function workspaceMemberCerts(cluster: Cluster, host: Host): Promise<MemberCertFiles> {
  const m = host.memberName;
  const read = (rel: string) => readPki(cluster, rel);
  // One after another: the first missing file (the CA first) is the one named.
  const ca = await read(CA_FILES.cert);
  const server = await read(`${m}/server.pem`);
  const peer = await read(`${m}/peer.pem`);
  const serverKey = await read(`${m}/server-key.pem`);
  const peerKey = await read(`${m}/peer-key.pem`);
  return { ca, server, serverKey, peer, peerKey };
}

/**
 * Stand-ins for a member whose pairs are issued only once its host passed a dry run (member
 * replace on another host): the workspace's CA, and for each pair a line saying what comes. For
 * dry runs only (they read the host and never write a file).
 */
export async function standInMemberCerts(
  cluster: Cluster,
  member: string,
): Promise<MemberCertFiles> {
  const line = (what: string) =>
    Buffer.from(`# the ${what} of ${member}, issued once this dry run passes\n`);
  return {
    ca: await readPki(cluster, CA_FILES.cert),
    server: line('server certificate'),
    serverKey: line('server key'),
    peer: line('peer certificate'),
    peerKey: line('peer key'),
  };
}

/** The file steps (ids as MEMBER_CERT_STEP_IDS) and the key payloads. */
export function memberCertSteps(files: MemberCertFiles): { steps: Step[]; payloads: Payload[] } {
  const cert = (id: string, title: string, name: string, content: Buffer, owner: string) =>
    fileStep({
      id,
      title: `${title} ${PKI}/${name}`,
      path: `${PKI}/${name}`,
      content: content.toString('utf8'),
      mode: 0o644,
      owner,
      group: owner,
    });
  const key = (id: string, name: string, content: Buffer) =>
    fileStep({
      id,
      title: `member key ${PKI}/${name} (0600, etcd)`,
      path: `${PKI}/${name}`,
      mode: 0o600,
      owner: 'etcd',
      content,
      payload: name,
    });
  return {
    steps: [
      cert('ca', 'CA certificate', 'ca.pem', files.ca, 'root'),
      cert('server', 'server certificate', 'server.pem', files.server, 'etcd'),
      key('server-key', 'server-key.pem', files.serverKey),
      cert('peer', 'peer certificate', 'peer.pem', files.peer, 'etcd'),
      key('peer-key', 'peer-key.pem', files.peerKey),
    ],
    payloads: [
      {
        name: 'server-key.pem',
        content: files.serverKey,
        sha256: sha256(files.serverKey),
        step: 'server-key',
      },
      {
        name: 'peer-key.pem',
        content: files.peerKey,
        sha256: sha256(files.peerKey),
        step: 'peer-key',
      },
    ],
  };
}

/**
 * Only the certificate files of an installed member, and etcd restarted when one changed, then
 * active again. Its health and catch-up are the rolling engine's to check (over the API, with
 * the admin certificate), one member at a time. etcd 3.4 re-reads its certificate files on every
 * new connection, so a renewed file is served even without a restart; the restart is what proves
 * the member really starts and runs with the new files (and the engine puts the old ones back
 * when it does not).
 */
export function planMemberCertificates(
  cluster: Cluster,
  host: Host,
  files: MemberCertFiles,
): HostPlan {
  const { steps, payloads } = memberCertSteps(files);
  return {
    host: host.name,
    title: `k3s-etcd: certificates of etcd member ${host.memberName} of cluster ${cluster.name} on ${host.name}`,
    steps: [
      systemdGuard('etcd runs under systemd'),
      {
        kind: 'guard',
        id: 'installed',
        title: `etcd is installed here (${PKI} and the etcd unit)`,
        check: `[ -d ${PKI} ] && systemctl cat etcd >/dev/null 2>&1`,
        message: `"etcd is not installed on this host: provision it first (k3s-etcd provision etcd --host ${host.name.replace(/[^A-Za-z0-9._-]/g, '')})"`,
      },
      ...steps,
      {
        kind: 'service',
        id: 'service',
        title: 'etcd restarted on its new certificate files (proof it runs with them)',
        unit: 'etcd',
        restartOn: [...MEMBER_CERT_STEP_IDS],
      },
      {
        kind: 'wait',
        id: 'active',
        title: 'etcd is active again',
        check: 'systemctl is-active -q etcd',
        seconds: 90,
        onTimeout: journalTail('etcd'),
        message:
          '"etcd did not become active within 90 s on its new certificate files: the last lines of journalctl -u etcd are above"',
      },
    ],
    payloads,
  };
}
