/**
 * `certs check`: for every etcd member and every K3s server, the certificate files deployed on
 * the host (read over SSH in one root batch per host) and the certificates each member serves on
 * its client and peer URLs (a TLS handshake), compared with the workspace's set. Read-only: it
 * changes nothing anywhere. A host that cannot be read is a finding, never "fine".
 */
import type { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from '../inventory/types';
import type { SshContext } from '../ssh/hostSession';
import { CA_FILES } from '../pki/set';
import { EXPIRY_WARNING_DAYS } from '../pki/inspect';
import { compareFile, type HostCheck, type WorkspaceFiles } from './compare';
import { checkedHosts, deployedFiles } from './files';
import { readRotationState } from '../pki/rotationState';
import { hostFindings, type Finding, type RotationFacts } from './findings';
import { MAX_PEM_BYTES, parseCertificates } from './pem';
import { readHostFiles } from './read';
import { readServed, type Served } from './served';

export const DEFAULT_WARN_DAYS = EXPIRY_WARNING_DAYS;

export interface CertsCheck {
  cluster: string;
  /** When the hosts were read (ISO 8601). */
  checkedAt: string;
  warnDays: number;
  hosts: HostCheck[];
  /** The CA rotation under way (rotation.json in the pki folder), which the findings point to. */
  rotation?: RotationFacts;
  /** Everything that is not fine, in words with what to do; empty when all is. */
  findings: Finding[];
}

export interface CheckOptions {
  ssh: SshContext;
  warnDays?: number;
  now?: Date;
  signal?: AbortSignal;
  /** Per TLS handshake. */
  tlsTimeoutMs?: number;
  /** "read h1", "h1: 5 files" as hosts finish. */
  onProgress?: (line: string) => void;
}

/** The workspace's copies of every file the hosts should hold. */
export async function readWorkspace(
  cluster: Cluster,
  paths: Iterable<string>,
): Promise<Map<string, X509Certificate[] | { problem: string }>> {
  const out = new Map<string, X509Certificate[] | { problem: string }>();
  for (const p of new Set(paths)) {
    let text: string;
    try {
      text = await readFile(join(cluster.pki.dir, p), 'utf8');
    } catch {
      out.set(p, { problem: 'missing' });
      continue;
    }
    const parsed =
      text.length > MAX_PEM_BYTES
        ? { ok: false as const, problem: 'too large' }
        : parseCertificates(text);
    out.set(p, parsed.ok ? parsed.value : { problem: parsed.problem });
  }
  return out;
}

/**
 * The CA rotation under way, if any. During one the hosts it has not reached differ from the
 * workspace by design, and only the rotation (not a renewal, not a deploy) goes on from there;
 * a rotation.json that cannot be used still means one is under way (`certs rotate-ca` says why).
 */
export async function rotationFacts(cluster: Cluster): Promise<RotationFacts | undefined> {
  const rot = await readRotationState(cluster);
  if (!rot) return undefined;
  if (!rot.ok) return { members: [], k3sServers: [] };
  return { phase: rot.state.phase, members: rot.state.members, k3sServers: rot.state.k3sServers };
}

export async function checkDeployedCertificates(
  cluster: Cluster,
  opts: CheckOptions,
): Promise<CertsCheck> {
  const warnDays = opts.warnDays ?? DEFAULT_WARN_DAYS;
  const hosts = checkedHosts(cluster);
  const plans = hosts.map((h) => ({ host: h, files: deployedFiles(cluster, h) }));
  const workspace: WorkspaceFiles = await readWorkspace(
    cluster,
    plans.flatMap((p) => p.files.map((f) => f.workspacePath)),
  );
  const rotation = await rotationFacts(cluster);
  const caEntry = workspace.get(CA_FILES.cert);
  const ca = Array.isArray(caEntry) ? caEntry[0] : undefined;
  const checks = await Promise.all(
    plans.map(async ({ host, files }): Promise<HostCheck> => {
      const paths = files.flatMap((f) => [f.hostPath, ...(f.hostKeyPath ? [f.hostKeyPath] : [])]);
      const [read, ...served] = await Promise.all([
        readHostFiles(cluster, host, paths, opts.ssh, opts.signal),
        ...files.map((f) =>
          f.servedAt
            ? readServed(f.servedAt, opts.tlsTimeoutMs, opts.signal)
            : Promise.resolve<Served | undefined>(undefined),
        ),
      ]);
      opts.onProgress?.(`${host.name}: ${read.error ? 'not read' : `${files.length} files read`}`);
      const now = opts.now ?? new Date();
      const base = { host: host.name, roles: [...host.roles] };
      if (read.error || !read.files)
        return { ...base, error: read.error ?? 'no answer', files: [] };
      const raw = read.files;
      return {
        ...base,
        files: files.map((f, i) => {
          const rawKey = f.hostKeyPath ? raw[paths.indexOf(f.hostKeyPath)] : undefined;
          const s = served[i];
          return compareFile({
            file: f,
            raw: raw[paths.indexOf(f.hostPath)] ?? { state: 'no-answer' },
            ...(rawKey ? { rawKey } : {}),
            workspace,
            ...(ca ? { ca } : {}),
            ...(s ? { served: s } : {}),
            now,
            warnDays,
          });
        }),
      };
    }),
  );
  return {
    cluster: cluster.name,
    checkedAt: (opts.now ?? new Date()).toISOString(),
    warnDays,
    hosts: checks,
    ...(rotation ? { rotation } : {}),
    findings: checks.flatMap((h) => hostFindings(h, warnDays, rotation)),
  };
}

/** Exit status of `certs check`: 1 when anything was found (unreachable hosts included). */
export function checkPassed(c: CertsCheck): boolean {
  return c.findings.length === 0;
}
