/**
 * `certs rotate-ca`: a new CA without an outage, in three phases, each planned (`planRotate`
 * reads and changes nothing; the new CA and leaves are made in memory) and carried out
 * (`runRotate`), each resumable from the workspace's state (state.ts):
 *   1. trust both: every member and K3s server gets the bundle (old CA + new CA) as its CA file,
 *      its certificates unchanged;
 *   2. every leaf re-issued under the new CA (renew's leaves and workspace code, with the new
 *      issuer; the admin client too, which no host holds) and rolled out; the bundle stays;
 *   3. trust only the new CA: the bundle replaced by the new CA alone; at the end the old CA is
 *      kept in `<pki>/ca-old-<UTC time>/` and ca.pem, ca-key.pem are the new CA's.
 * Members go through the rolling engine (one at a time, followers first, the leader last, health
 * between; the first failure or a cancel stops and puts that member's files back), then the K3s
 * servers one at a time (files, restart, Ready). The hosts that finished are recorded, so a run
 * again continues the phase with the others.
 */
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { K3sEtcdError, errorMessage } from '../errors';
import { backupStamp } from '../format/stamp';
import type { Cluster, Host } from '../inventory/types';
import { etcdHosts, k3sServers } from '../inventory/select';
import { parseCertificate } from '../pki/inspect';
import { createCa, type Issuer } from '../pki/issue';
import {
  desiredLeaves,
  effectiveAlgorithm,
  knownFiles,
  leafValidity,
  MONITORING_CLIENT,
  type PkiOptions,
} from '../pki/set';
import type { HostRun, RunHooks } from '../plan/runner';
import { runRolling } from '../rolling/engine';
import type { RollingPlan } from '../rolling/restarts';
import type { SshContext } from '../ssh/hostSession';
import { rollK3sDatastoreFiles } from '../k3s/datastoreRoll';
import { issueLeaves, type RenewLeaf } from '../renew/leaves';
import { currentCa, k3sFiles, memberJobs, refused, text, under } from './hosts';
import { probeLiveCluster } from '../rolling/live';
import { finishRenewed, writeRenewed } from '../renew/workspace';
import {
  beginRotation,
  bundleOf,
  finishRotation,
  newCaKeyPem,
  newCaSigningKey,
  readRotation,
  writeState,
  type Phase,
  type RotationState,
} from './state';

const DAY = 86_400_000;

export interface RotateOptions extends RunHooks {
  /** The phase asked for; it must be the one the state is in (1 when none). */
  phase?: Phase;
  ssh: SshContext;
  pki?: PkiOptions;
  now?: Date;
  settleMs?: number;
}

export interface CaFacts {
  sha256: string;
  subject: string;
  notAfter: string;
}

export interface RotatePlan {
  cluster: string;
  phase: Phase;
  /** True when phase 1 has not begun: the run makes the new CA (made in memory for the plan). */
  starting: boolean;
  oldCa: CaFacts;
  newCa: CaFacts;
  /** What the hosts trust after this phase. */
  trust: 'old and new CA' | 'new CA only';
  /** Phase 2: the leaves re-issued now (the others are already under the new CA). */
  leaves: RenewLeaf[];
  /** Hosts that finished this phase already. */
  done: { members: string[]; k3sServers: string[] };
  members: Host[];
  k3sServers: Host[];
  rolling: RollingPlan;
  memberRuns: HostRun[];
  k3sRuns: HostRun[];
  refusal?: string;
  /** Kept for the run, never shown. */
  caFile: Buffer;
  state: RotationState;
  newCaPair?: { certPem: string; keyPem: string };
  oldCaPem: string;
}

export interface RotateResult {
  phase: Phase;
  memberRuns: HostRun[];
  k3sRuns: HostRun[];
  rolling: RollingPlan;
  /** Phase 2: leaves whose previous files were put back (they did not reach their hosts). */
  putBack: string[];
  /** The phase is complete (every host finished it). */
  phaseDone: boolean;
  /** The next phase to run, when this one is done and it was not the last. */
  next?: Phase;
  /** Phase 3 done: the folder (in the pki folder) the old CA is kept in. */
  oldCaKept?: string;
  ok: boolean;
}

/** Leaves no host holds: this tool's own client and the monitoring client (Prometheus holds it). */
const WORKSPACE_ONLY = new Set(['client/admin.pem', MONITORING_CLIENT.file.path]);

const facts = (c: X509Certificate): CaFacts => ({
  sha256: c.fingerprint256,
  subject: c.subject.replace(/\n/g, ', '),
  notAfter: new Date(c.validTo).toISOString(),
});

/** Reads and plans; changes nothing (a new CA and new keys are made in memory only). */
export async function planRotate(cluster: Cluster, opts: RotateOptions): Promise<RotatePlan> {
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  if (etcdHosts(cluster).length === 0)
    throw new K3sEtcdError('usage', `Cluster ${cluster.name} has no etcd member in k3s-etcd.yaml.`);
  if (cluster.etcd.tls)
    throw refused(
      `the inventory names its own client TLS files (etcd.tls) for ${cluster.name}: this tool checks every member's health during a rotation with the workspace's admin certificate, which the rotation re-issues and whose trust it keeps in step; remove etcd.tls from k3s-etcd.yaml for the rotation`,
    );
  const rot = await readRotation(cluster);
  const servers = cluster.datastore === 'external-etcd' ? k3sServers(cluster) : [];
  let state: RotationState;
  let oldCa: X509Certificate;
  let oldCaPem: string;
  let newCa: X509Certificate;
  let newCaPem: string;
  let newCaPair: RotatePlan['newCaPair'];
  if (!rot) {
    if (opts.phase !== undefined && opts.phase !== 1)
      throw new K3sEtcdError(
        'usage',
        `No CA rotation of ${cluster.name} is under way, so phase ${opts.phase} cannot run: start with phase 1 (\`k3s-etcd certs rotate-ca\`).`,
      );
    const cur = await currentCa(cluster, now);
    oldCa = cur.c;
    oldCaPem = cur.pem;
    newCaPair = await createCa(
      `${cluster.name} etcd CA ${backupStamp(now)}`,
      effectiveAlgorithm(cluster, opts.pki?.defaultAlgorithm),
      {
        notBefore: new Date(now.getTime() - 5 * 60_000),
        notAfter: new Date(now.getTime() + cluster.pki.caValidityDays * DAY),
      },
    );
    // An encrypted CA key stays encrypted: the new one with the same passphrase.
    newCaPair = { ...newCaPair, keyPem: await newCaKeyPem(cluster, newCaPair.keyPem, opts.pki) };
    newCaPem = newCaPair.certPem;
    newCa = parseCertificate(newCaPem);
    state = {
      version: 1,
      phase: 1,
      oldCa: oldCa.fingerprint256,
      newCa: newCa.fingerprint256,
      members: [],
      k3sServers: [],
      startedAt: now.toISOString(),
    };
  } else {
    state = rot.state;
    if (opts.phase !== undefined && opts.phase !== state.phase)
      throw new K3sEtcdError(
        'usage',
        `The CA rotation of ${cluster.name} is in phase ${state.phase}${state.members.length + state.k3sServers.length > 0 ? ` (done: ${[...state.members, ...state.k3sServers.map((s) => `${s} (K3s)`)].join(', ')})` : ''}: phase ${opts.phase} cannot run now; run \`k3s-etcd certs rotate-ca\` to go on with phase ${state.phase}.`,
      );
    oldCaPem = rot.oldCaPem;
    oldCa = parseCertificate(oldCaPem);
    newCaPem = rot.newCaPem;
    newCa = rot.newCa;
  }
  const phase = state.phase;
  const caFile = Buffer.from(phase === 3 ? newCaPem : bundleOf(oldCaPem, newCaPem));
  const members = etcdHosts(cluster).filter((h) => !state.members.includes(h.name));
  const toGo = servers.filter((h) => !state.k3sServers.includes(h.name));

  let leaves: RenewLeaf[] = [];
  if (phase === 2) {
    const issuer: Issuer = {
      certPem: newCaPem,
      signingKey: await newCaSigningKey(cluster, newCa, opts.pki),
    };
    const names = new Set(members.map((h) => h.memberName));
    const wanted = desiredLeaves(cluster).filter((s) =>
      s.file.kind === 'client'
        ? s.file.path === 'client/admin.pem' ||
          (toGo.length > 0 && s.file.path === 'client/k3s.pem')
        : s.file.member !== undefined && names.has(s.file.member),
    );
    // The monitoring client, once exported: no host holds it, but Prometheus presents it, and
    // after phase 3 the members refuse a certificate of the old CA.
    if ((await text(join(dir, MONITORING_CLIENT.file.path))) !== undefined)
      wanted.push(MONITORING_CLIENT);
    const specs = [];
    // A leaf already under the new CA (written by a run that stopped) is rolled out as it is.
    for (const s of wanted) if (!under(await text(join(dir, s.file.path)), newCa)) specs.push(s);
    const validity = leafValidity(cluster, now);
    if (validity.notAfter > new Date(newCa.validTo)) validity.notAfter = new Date(newCa.validTo);
    leaves = await issueLeaves(
      cluster,
      specs,
      issuer,
      effectiveAlgorithm(cluster, opts.pki?.defaultAlgorithm),
      validity,
    );
  }

  const base = {
    cluster: cluster.name,
    phase,
    starting: !rot,
    oldCa: facts(oldCa),
    newCa: facts(newCa),
    trust: phase === 3 ? ('new CA only' as const) : ('old and new CA' as const),
    leaves,
    done: { members: state.members, k3sServers: state.k3sServers },
    members,
    k3sServers: toGo,
    caFile,
    state,
    ...(newCaPair ? { newCaPair } : {}),
    oldCaPem,
  };
  const running = await probeLiveCluster(cluster, opts.signal);
  const hooks = { ...(opts.signal ? { signal: opts.signal } : {}) };
  const draft: RotatePlan = {
    ...base,
    rolling: { mode: 'rolling', order: [], filesOnly: [] },
    memberRuns: [],
    k3sRuns: [],
  };
  const { runs, plan } = await runRolling(memberJobs(cluster, draft, opts.ssh), {
    ...hooks,
    dryRun: true,
    ...('table' in running ? { live: running } : {}),
  });
  const k3sRuns =
    toGo.length > 0
      ? await rollK3sDatastoreFiles(cluster, await k3sFiles(cluster, draft), {
          ...hooks,
          dryRun: true,
          ssh: opts.ssh,
          servers: toGo,
        })
      : [];
  const unread = [...runs, ...k3sRuns].filter(
    (r) => r.status === 'failed' || r.status === 'cancelled',
  );
  const refusal =
    'why' in running
      ? `no member of ${cluster.name} answered from here (${running.why}): a CA rotation rolls out to a running cluster, one member at a time, with health checks between; start the cluster first`
      : (plan.refusal ??
        (unread.length > 0
          ? unread.map((r) => r.error?.message ?? `${r.host}: ${r.status}`).join('; ')
          : undefined));
  return {
    ...draft,
    rolling: plan,
    memberRuns: runs,
    k3sRuns,
    ...(refusal ? { refusal } : {}),
  };
}

const ok = (r: HostRun | undefined) => r?.status === 'changed' || r?.status === 'unchanged';

/** Carries out `plan`: the workspace first, then the members one at a time, then K3s. */
export async function runRotate(
  cluster: Cluster,
  plan: RotatePlan,
  opts: RotateOptions,
): Promise<RotateResult> {
  if (plan.refusal) throw refused(plan.refusal);
  const now = opts.now ?? new Date();
  const dir = cluster.pki.dir;
  const running = await probeLiveCluster(cluster, opts.signal);
  if ('why' in running) throw refused(`no member of ${cluster.name} answers now (${running.why})`);
  const say = (line: string) => opts.onLine?.(cluster.name, line);
  const state: RotationState = {
    ...plan.state,
    members: [...plan.state.members],
    k3sServers: [...plan.state.k3sServers],
  };
  if (plan.starting && plan.newCaPair) {
    await beginRotation(cluster, plan.oldCaPem, plan.newCaPair, state);
    say(
      `workspace: the new CA in rotation/ca.pem (${plan.newCa.sha256}); ca.pem is now the bundle of the old and the new CA; the rotation's state in rotation.json`,
    );
  }
  const known = knownFiles(cluster);
  let folder: string | undefined;
  if (plan.leaves.length > 0) {
    folder = await writeRenewed(dir, cluster.name, known, plan.leaves, now);
    say(
      `workspace: ${plan.leaves.length} certificate(s) re-issued under the new CA; the previous ones kept in ${folder} until the rollout finished`,
    );
  }
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };
  let memberRuns: HostRun[] = [];
  let k3sRuns: HostRun[] = [];
  let rolling = plan.rolling;
  let putBack: string[] = [];
  let oldCaKept: string | undefined;
  try {
    const r = await runRolling(memberJobs(cluster, plan, opts.ssh), {
      ...hooks,
      dryRun: false,
      live: running,
      ...(opts.settleMs ? { settleMs: opts.settleMs } : {}),
    });
    memberRuns = r.runs;
    rolling = r.plan;
    if (plan.k3sServers.length > 0) {
      if (memberRuns.every(ok))
        k3sRuns = await rollK3sDatastoreFiles(cluster, await k3sFiles(cluster, plan), {
          ...hooks,
          dryRun: false,
          ssh: opts.ssh,
          servers: plan.k3sServers,
        });
      else
        k3sRuns = plan.k3sServers.map((h) => {
          const message = `${h.name}: not started: the members' rollout did not finish`;
          opts.onLine?.(h.name, message);
          return { host: h.name, status: 'failed', steps: [], error: { message }, timings: {} };
        });
    }
  } finally {
    // Whatever happened above: record who finished, and the workspace holds what hosts run.
    for (const r of memberRuns) if (ok(r)) state.members.push(r.host);
    for (const r of k3sRuns) if (ok(r)) state.k3sServers.push(r.host);
    if (folder) {
      const hostOf = new Map(plan.members.map((h) => [h.memberName, h.name]));
      const deployed = new Set(
        plan.leaves
          .filter((l) =>
            WORKSPACE_ONLY.has(l.path)
              ? true
              : l.kind === 'client'
                ? k3sRuns.some(ok)
                : ok(memberRuns.find((r) => r.host === hostOf.get(l.member ?? ''))),
          )
          .map((l) => l.path),
      );
      try {
        putBack = await finishRenewed(dir, cluster.name, known, plan.leaves, deployed, folder);
        if (putBack.length > 0)
          say(
            `workspace: ${putBack.join(', ')} did not reach their hosts: their previous files were put back`,
          );
      } catch (err) {
        say(
          `workspace: the previous files could not be put back (${errorMessage(err)}): they are kept in ${folder}`,
        );
      }
    }
    await writeState(dir, state);
  }
  const phaseDone =
    etcdHosts(cluster).every((h) => state.members.includes(h.name)) &&
    (cluster.datastore === 'external-etcd' ? k3sServers(cluster) : []).every((h) =>
      state.k3sServers.includes(h.name),
    );
  let next: Phase | undefined;
  if (phaseDone) {
    if (plan.phase < 3) {
      next = (plan.phase + 1) as Phase;
      await writeState(dir, { ...state, phase: next, members: [], k3sServers: [] });
      say(
        `phase ${plan.phase} done on every host: next is phase ${next} (\`k3s-etcd certs rotate-ca\`)`,
      );
    } else {
      oldCaKept = await finishRotation(cluster, now);
      say(
        `workspace: the old CA and its key kept in ${oldCaKept}/; ca.pem and ca-key.pem are the new CA's`,
      );
    }
  }
  return {
    phase: plan.phase,
    memberRuns,
    k3sRuns,
    rolling,
    putBack,
    phaseDone,
    ...(next ? { next } : {}),
    ...(oldCaKept ? { oldCaKept } : {}),
    ok: phaseDone,
  };
}
