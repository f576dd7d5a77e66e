/**
 * `certs renew`: the chosen leaves re-issued under the same CA and rolled out without an outage.
 * `planRenew` reads and changes nothing: the CA (a CA that ends before the new leaves would is
 * refused: rotate it instead), the new certificates issued in memory, the member table (a
 * cluster not healthy enough for a rolling change is refused in the engine's words), every
 * member's and K3s server's plan dry-run with the new files. `runRenew` carries out that very
 * plan: the old files aside in the workspace and the new ones in place (workspace.ts), then the
 * members through the rolling engine (one at a time, followers first, the leader last after
 * move-leader, every other voter healthy before each, the member healthy and caught up after,
 * the first failure stops and puts that member's old files back), then the K3s servers one at a
 * time (files, restart, Ready; the first failure puts its old files back), and at the end the
 * workspace holds what the hosts run.
 *
 * Built for reuse by a CA rotation's re-issue phase: the issuer and the CA file deployed beside
 * the leaves are inputs (`RenewInputs`), not read here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { K3sEtcdError, errorMessage } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { parseCertificate } from '../pki/inspect';
import type { Issuer } from '../pki/issue';
import {
  CA_FILES,
  knownFiles,
  leafValidity,
  loadIssuer,
  ROTATION_STATE_FILE,
  type PkiOptions,
} from '../pki/set';
import type { HostRun, RunHooks } from '../plan/runner';
import { runRolling, type RollingJob } from '../rolling/engine';
import { probeLiveCluster } from '../rolling/live';
import type { RollingPlan } from '../rolling/restarts';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { planMemberCertificates, type MemberCertFiles } from '../provision/memberCerts';
import { rollK3sDatastoreFiles } from '../k3s/datastoreRoll';
import type { DatastoreClientFiles } from '../k3s/datastoreSteps';
import type { KeyAlgorithm } from '../inventory/types';
import { caRefusal, issueLeaves, renewScope, type RenewLeaf } from './leaves';
import { asideName, finishRenewed, writeRenewed } from './workspace';

export interface RenewOptions extends RunHooks {
  /** Member (or host) names; every member when empty. */
  members?: string[];
  /** The K3s datastore client certificate too, rolled out to every K3s server. */
  k3s?: boolean;
  ssh: SshContext;
  pki?: PkiOptions;
  now?: Date;
  /** How long a restarted member may take to be healthy and caught up (the engine's default). */
  settleMs?: number;
}

/** What a renewal is given: who issues, and the CA file the hosts get beside their leaves. */
export interface RenewInputs {
  issuer: Issuer;
  algorithm: KeyAlgorithm;
  /** The CA file (or CA bundle) members and K3s servers trust. */
  caFile: Buffer;
}

export interface RenewPlan {
  cluster: string;
  /** The leaves re-issued, in memory: what the run writes and deploys. */
  leaves: RenewLeaf[];
  /** The CA's end (ISO). */
  caNotAfter: string;
  /** Members: who restarts, in what order, and why (the engine's plan). */
  rolling: RollingPlan;
  /** Every member's dry run. */
  memberRuns: HostRun[];
  /** Every K3s server's dry run, in the order they go (empty without --k3s). */
  k3sRuns: HostRun[];
  /** Where the old files are kept during the run (relative to the pki folder, named now). */
  aside: string;
  /** Why it would be refused now (the engine's words, or a host that cannot be read). */
  refusal?: string;
  /** Kept for the run, never shown. */
  inputs: RenewInputs;
  members: Host[];
  k3sServers: Host[];
}

export interface RenewResult {
  leaves: Array<Pick<RenewLeaf, 'path' | 'name' | 'sha256' | 'notAfter'> & { deployed: boolean }>;
  memberRuns: HostRun[];
  k3sRuns: HostRun[];
  rolling: RollingPlan;
  /** Leaves whose previous files were put back in the workspace (they did not reach their hosts). */
  putBack: string[];
  /** The dated folder with the old files, when it could not be removed (absolute). */
  kept?: string;
  ok: boolean;
}

const memberFiles = (leaves: readonly RenewLeaf[], caFile: Buffer, m: string): MemberCertFiles => {
  const leaf = (kind: 'server' | 'peer') =>
    leaves.find((l) => l.member === m && l.kind === kind) as RenewLeaf;
  return {
    ca: caFile,
    server: Buffer.from(leaf('server').certPem),
    serverKey: Buffer.from(leaf('server').keyPem),
    peer: Buffer.from(leaf('peer').certPem),
    peerKey: Buffer.from(leaf('peer').keyPem),
  };
};

const k3sFiles = (leaves: readonly RenewLeaf[], caFile: Buffer): DatastoreClientFiles => {
  const l = leaves.find((x) => x.kind === 'client') as RenewLeaf;
  return { ca: caFile, cert: Buffer.from(l.certPem), key: Buffer.from(l.keyPem) };
};

function memberJobs(
  cluster: Cluster,
  hosts: readonly Host[],
  leaves: readonly RenewLeaf[],
  caFile: Buffer,
  ssh: SshContext,
): RollingJob[] {
  return hosts.map((host) => ({
    host: host.name,
    member: host.memberName,
    open: sshOpener(cluster, host, ssh),
    plan: async () =>
      planMemberCertificates(cluster, host, memberFiles(leaves, caFile, host.memberName)),
  }));
}

/** The cluster's own CA as the issuer, and its certificate as the file the hosts trust. */
export async function sameCa(cluster: Cluster, pki: PkiOptions = {}): Promise<RenewInputs> {
  const { issuer, algorithm } = await loadIssuer(cluster, pki);
  return {
    issuer,
    algorithm,
    caFile: await readFile(join(cluster.pki.dir, CA_FILES.cert)),
  };
}

/** Reads and plans; changes nothing (keys are issued in memory only). */
export async function planRenew(
  cluster: Cluster,
  opts: RenewOptions,
  given?: RenewInputs,
): Promise<RenewPlan> {
  const now = opts.now ?? new Date();
  const scope = renewScope(cluster, opts.members ?? [], opts.k3s === true);
  const validity = leafValidity(cluster, now);
  // The CA's end first: no passphrase is asked for a renewal that is refused anyway.
  let caPem: string;
  try {
    caPem =
      given?.caFile.toString('utf8') ??
      (await readFile(join(cluster.pki.dir, CA_FILES.cert), 'utf8'));
  } catch {
    throw new K3sEtcdError(
      'certs-missing',
      `${join(cluster.pki.dir, CA_FILES.cert)} is missing: generate the certificates first (\`k3s-etcd certs generate\`).`,
    );
  }
  // During a CA rotation ca.pem is the trust bundle: re-issuing under the old CA would be cut off
  // by its last phase (the rotation re-issues every leaf itself, in its phase 2).
  if (
    !given &&
    (await readFile(join(cluster.pki.dir, ROTATION_STATE_FILE)).then(
      () => true,
      () => false,
    ))
  )
    throw new K3sEtcdError(
      'provision-refused',
      `Not renewed: a CA rotation of ${cluster.name} is under way (rotation.json in the pki folder); its phase 2 re-issues every certificate under the new CA. Go on with \`k3s-etcd certs rotate-ca\`. Nothing was changed.`,
    );
  const ca = parseCertificate(caPem);
  const refusedCa = caRefusal(ca, validity);
  if (refusedCa) throw new K3sEtcdError('provision-refused', `Not renewed: ${refusedCa}.`);
  const inputs = given ?? (await sameCa(cluster, { ...opts.pki, now }));
  const leaves = await issueLeaves(cluster, scope.specs, inputs.issuer, inputs.algorithm, validity);

  const running = await probeLiveCluster(cluster, opts.signal);
  const hooks = { ...(opts.signal ? { signal: opts.signal } : {}) };
  const jobs = memberJobs(cluster, scope.members, leaves, inputs.caFile, opts.ssh);
  const { runs, plan } = await runRolling(jobs, {
    ...hooks,
    dryRun: true,
    ...('table' in running ? { live: running } : {}),
  });
  const k3sRuns =
    scope.k3sServers.length > 0
      ? await rollK3sDatastoreFiles(cluster, k3sFiles(leaves, inputs.caFile), {
          ...hooks,
          dryRun: true,
          ssh: opts.ssh,
          servers: scope.k3sServers,
        })
      : [];
  const unread = [...runs, ...k3sRuns].filter(
    (r) => r.status === 'failed' || r.status === 'cancelled',
  );
  const refusal =
    'why' in running
      ? `no member of ${cluster.name} answered from here (${running.why}): a renewal rolls out to a running cluster, one member at a time, with health checks between; start the cluster first (or, for a cluster that is not running, re-issue with \`k3s-etcd certs reissue\` and deploy with \`k3s-etcd provision etcd\`)`
      : (plan.refusal ??
        (unread.length > 0
          ? `${unread.map((r) => r.error?.message ?? `${r.host}: ${r.status}`).join('; ')}`
          : undefined));
  return {
    cluster: cluster.name,
    leaves,
    caNotAfter: new Date(ca.validTo).toISOString(),
    rolling: plan,
    memberRuns: runs,
    k3sRuns,
    aside: asideName(now),
    ...(refusal ? { refusal } : {}),
    inputs,
    members: scope.members,
    k3sServers: scope.k3sServers,
  };
}

const done = (r: HostRun | undefined) => r?.status === 'changed' || r?.status === 'unchanged';

/** Carries out `plan`: the workspace first, then the members one at a time, then K3s. */
export async function runRenew(
  cluster: Cluster,
  plan: RenewPlan,
  opts: RenewOptions,
): Promise<RenewResult> {
  if (plan.refusal)
    throw new K3sEtcdError(
      'provision-refused',
      `Not renewed: ${plan.refusal}. Nothing was changed.`,
    );
  const now = opts.now ?? new Date();
  const running = await probeLiveCluster(cluster, opts.signal);
  if ('why' in running)
    throw new K3sEtcdError(
      'provision-refused',
      `Not renewed: no member of ${cluster.name} answers now (${running.why}). Nothing was changed.`,
    );
  const dir = cluster.pki.dir;
  const known = knownFiles(cluster);
  const folder = await writeRenewed(dir, cluster.name, known, plan.leaves, now);
  opts.onLine?.(
    cluster.name,
    `workspace: ${plan.leaves.length} certificate(s) and key(s) renewed; the previous ones kept in ${folder} until the rollout finished`,
  );
  const { inputs } = plan;
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };
  let memberRuns: HostRun[] = [];
  let rolling = plan.rolling;
  let k3sRuns: HostRun[] = [];
  let finished: { putBack: string[]; kept?: string } = { putBack: [] };
  let resultLeaves: RenewResult['leaves'] = [];
  const hostOf = new Map(plan.members.map((h) => [h.memberName, h.name]));
  try {
    const r = await runRolling(
      memberJobs(cluster, plan.members, plan.leaves, inputs.caFile, opts.ssh),
      {
        ...hooks,
        dryRun: false,
        live: running,
        ...(opts.settleMs ? { settleMs: opts.settleMs } : {}),
      },
    );
    memberRuns = r.runs;
    rolling = r.plan;
    const membersOk = memberRuns.every(done);
    if (plan.k3sServers.length > 0) {
      if (membersOk) {
        k3sRuns = await rollK3sDatastoreFiles(cluster, k3sFiles(plan.leaves, inputs.caFile), {
          ...hooks,
          dryRun: false,
          ssh: opts.ssh,
          servers: plan.k3sServers,
        });
      } else {
        k3sRuns = plan.k3sServers.map((h) => {
          const message = `${h.name}: not started: the members' rollout did not finish`;
          opts.onLine?.(h.name, message);
          return { host: h.name, status: 'failed', steps: [], error: { message }, timings: {} };
        });
      }
    }
  } finally {
    // Whatever happened above, the workspace ends up holding what the hosts run.
    const deployed = new Set(
      plan.leaves
        .filter((l) =>
          l.kind === 'client'
            ? k3sRuns.some(done)
            : done(memberRuns.find((r) => r.host === hostOf.get(l.member ?? ''))),
        )
        .map((l) => l.path),
    );
    try {
      const putBack = await finishRenewed(dir, cluster.name, known, plan.leaves, deployed, folder);
      if (putBack.length > 0)
        opts.onLine?.(
          cluster.name,
          `workspace: ${putBack.join(', ')} did not reach their hosts: their previous files were put back`,
        );
      finished = { putBack };
    } catch (err) {
      opts.onLine?.(
        cluster.name,
        `workspace: the previous files could not be put back (${errorMessage(err)}): they are kept in ${folder}`,
      );
      finished = { putBack: [], kept: folder };
    }
    resultLeaves = plan.leaves.map((l) => ({
      path: l.path,
      name: l.name,
      sha256: l.sha256,
      notAfter: l.notAfter,
      deployed: deployed.has(l.path),
    }));
  }
  return {
    leaves: resultLeaves,
    memberRuns,
    k3sRuns,
    rolling,
    putBack: finished.putBack,
    ...(finished.kept ? { kept: finished.kept } : {}),
    ok: memberRuns.every(done) && k3sRuns.every(done) && !finished.kept,
  };
}
