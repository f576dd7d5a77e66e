/**
 * Runs a planned recovery (`plan.ts`): every host it changes reached and read before anything,
 * a dry run of every script first; then, after the confirmation, the survivor's snapshot, the
 * others' data moved aside, the survivor alone with --force-new-cluster, the others re-added as
 * learners one at a time, and the cluster checked. A failure says where every host stands and
 * what to do.
 */
import { CancelledError, K3sEtcdError, errorMessage, isCancelled } from '../errors';
import { healthyClient, connectionFor, firstAnswering } from '../etcd/connection';
import { waitHealthy } from '../etcd/health';
import { ENV_FILE, readFacts } from '../etcd/memberHost';
import type { SnapshotInfo } from '../etcd/snapshotFile';
import { clientEndpoints, etcdHosts } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { runHostPlan, type HostRun, type HostTransport, type RunHooks } from '../plan/runner';
import { addMember } from '../provision/members';
import { saveSnapshot } from '../snapshot/snapshot';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { BIN_DIR } from '../etcd/memberHost';
import { dirname } from 'node:path';
import { asidePlan, survivorPlan } from './hostPlans';
import type { RecoverPlan } from './plan';

export type RecoverPhase = 'snapshot' | 'aside' | 'survivor' | 'rejoin' | 'check';

export const RECOVER_PHASES: Record<RecoverPhase, string> = {
  snapshot: "save the survivor's data first",
  aside: 'stop etcd on the other members and move their data aside',
  survivor: 'start the survivor once with --force-new-cluster, then normally',
  rejoin: 're-add the other members as learners, one at a time',
  check: 'check the recovered cluster',
};
const ORDER: RecoverPhase[] = ['snapshot', 'aside', 'survivor', 'rejoin', 'check'];

export interface RecoverOptions extends RunHooks {
  ssh: SshContext;
  /** The workspace (the snapshot goes into its backups/<cluster>/). */
  workspaceDir: string;
  dryRun: boolean;
  onPhase?(phase: RecoverPhase, n: number, title: string): void;
}

export interface RecoverResult {
  plan: RecoverPlan;
  dryRun: boolean;
  /** Every host script's run (a dry run: each only read the host). */
  runs: HostRun[];
  snapshot?: SnapshotInfo;
  rejoined: { host: string; memberId: string }[];
  notRejoined: { host: string; why: string }[];
  healthy?: boolean;
  healthSummary?: string;
  /** The revision served after the recovery (the survivor's, plus any write since). */
  revision?: string;
  /** Data dirs kept aside, per host. */
  kept: { host: string; path: string }[];
  /** From the start of the real run (after the confirmation) to the members healthy. */
  tookMs?: number;
}

const failedRun = (r: HostRun) => r.status === 'failed' || r.status === 'cancelled';

/** The hosts the recovery changes, each reached over SSH, or nothing changed. */
async function reach(
  cluster: Cluster,
  hosts: Host[],
  opts: RecoverOptions,
): Promise<Map<string, HostTransport>> {
  const opened = await Promise.allSettled(
    hosts.map((h) => sshOpener(cluster, h, opts.ssh)(opts.signal)),
  );
  const out = new Map<string, HostTransport>();
  const problems: string[] = [];
  opened.forEach((o, i) => {
    const h = hosts[i] as Host;
    if (o.status === 'fulfilled') out.set(h.name, o.value);
    else problems.push(`${h.name} (${h.address}): ${errorMessage(o.reason)}`);
  });
  if (problems.length > 0 || opts.signal?.aborted) {
    for (const t of out.values()) t.close();
    if (opts.signal?.aborted) throw new CancelledError('Recovery');
    throw new K3sEtcdError(
      'recover-refused',
      `Cannot reach ${problems.join('; ')}. Nothing was changed on any host: bring SSH back and run the recovery again.`,
    );
  }
  return out;
}

/**
 * Recovers `cluster` as `plan` says. A dry run reads every host it would change and runs each
 * script with DRY_RUN=1. A real run throws `recover-refused` when nothing was changed yet, and
 * `recover-failed` after, saying where each host stands.
 */
export async function recoverCluster(
  cluster: Cluster,
  plan: RecoverPlan,
  opts: RecoverOptions,
): Promise<RecoverResult> {
  const all = etcdHosts(cluster);
  const hostNamed = (name: string) => all.find((h) => h.name === name) as Host;
  const survivor = hostNamed(plan.survivor.host);
  const rejoin = plan.others.filter((o) => o.fate !== 'unreachable').map((o) => hostNamed(o.host));
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };
  const phase = (p: RecoverPhase) => opts.onPhase?.(p, ORDER.indexOf(p) + 1, RECOVER_PHASES[p]);
  const result: RecoverResult = {
    plan,
    dryRun: opts.dryRun,
    runs: [],
    rejoined: [],
    notRejoined: [],
    kept: [],
  };

  const transports = await reach(cluster, [survivor, ...rejoin], opts);
  const t = (h: Host) => transports.get(h.name) as HostTransport;
  let started = 0;
  try {
    // Read the survivor before anything: its installed etcd (etcdctl beside it) and env file.
    const facts = await readFacts(t(survivor), cluster, survivor, opts.signal);
    const env = await t(survivor).exec(`cat ${ENV_FILE}`, {
      sudo: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (env.code !== 0)
      throw new K3sEtcdError(
        'recover-refused',
        `${survivor.name}: cannot read ${ENV_FILE} (${env.stderr.trim() || `exit ${env.code}`}): etcd was not provisioned there by k3s-etcd. Nothing was changed.`,
      );
    const binDir = facts.etcdPath ? dirname(facts.etcdPath) : BIN_DIR;
    const survivorScript = survivorPlan(cluster, plan, survivor, { env: env.stdout, binDir });
    const asideScripts = rejoin.map((h) => asidePlan(plan, h));

    if (opts.dryRun) {
      phase('aside');
      result.runs.push(
        ...(await Promise.all(
          asideScripts.map((p) => runHostPlan(t(hostNamed(p.host)), p, { ...hooks, dryRun: true })),
        )),
      );
      phase('survivor');
      result.runs.push(await runHostPlan(t(survivor), survivorScript, { ...hooks, dryRun: true }));
      return result;
    }

    // Confirmed: quorum may have come back since the detection (a member restarted).
    const conn = await connectionFor(cluster);
    const q = await firstAnswering(clientEndpoints(cluster), { tls: conn.tls, timeoutMs: 2000 });
    if ('client' in q) {
      q.client.close();
      throw new K3sEtcdError(
        'recover-refused',
        `Cluster ${cluster.name} has quorum again (${q.endpoint} serves a quorum read): nothing was changed. Replace a failed member with \`k3s-etcd member replace MEMBER\` instead.`,
      );
    }
    started = performance.now();

    phase('snapshot');
    if (plan.survivor.answers) {
      try {
        result.snapshot = await saveSnapshot(cluster, {
          workspaceDir: opts.workspaceDir,
          endpoint: plan.survivor.endpoint,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (err) {
        if (isCancelled(err)) throw err;
        throw new K3sEtcdError(
          'recover-refused',
          `The snapshot of ${plan.survivor.host} failed (${errorMessage(err)}): nothing was changed on any host. Check that ${plan.survivor.host} still answers (k3s-etcd status) and run the recovery again.`,
          { cause: err },
        );
      }
      opts.onLine?.(
        survivor.name,
        `snapshot saved: ${result.snapshot.file} (${result.snapshot.bytes} bytes, revision ${result.snapshot.revision})`,
      );
    } else {
      opts.onLine?.(
        survivor.name,
        `down: its data dir is copied to ${plan.survivor.copyAs ?? ''} by its script below`,
      );
    }

    phase('aside');
    const aside = await Promise.all(
      asideScripts.map((p) => runHostPlan(t(hostNamed(p.host)), p, { ...hooks, dryRun: false })),
    );
    result.runs.push(...aside);
    for (const o of plan.others)
      if (o.keptAs && aside.some((r) => r.host === o.host && !failedRun(r)))
        result.kept.push({ host: o.host, path: o.keptAs });
    const badAside = aside.filter(failedRun);
    if (badAside.length > 0)
      throw new K3sEtcdError(
        'recover-failed',
        `${badAside.map((r) => r.error?.message ?? `${r.host}: ${r.status}`).join('; ')}. ${plan.survivor.host} was not touched; ${
          aside
            .filter((r) => !failedRun(r))
            .map((r) => r.host)
            .join(', ') || 'no host'
        } had etcd stopped and the data moved aside (kept at ${plan.dataDir}.recover-${plan.stamp}). Fix the failure and run the recovery again: it finds the same survivor.`,
      );

    phase('survivor');
    // Past this point the survivor runs alone: a cancel would leave it stopped, so the script ends.
    const { signal: _signal, ...unsignalled } = hooks;
    const sv = await runHostPlan(t(survivor), survivorScript, { ...unsignalled, dryRun: false });
    result.runs.push(sv);
    if (failedRun(sv))
      throw new K3sEtcdError(
        'recover-failed',
        `${sv.error?.message ?? `${survivor.name}: ${sv.status}`}. ${survivor.name}'s data dir ${plan.dataDir} is intact${result.snapshot ? ` and saved in ${result.snapshot.file}` : plan.survivor.copyAs ? ` and copied to ${plan.survivor.copyAs}` : ''}; the other members are stopped with their data kept at ${plan.dataDir}.recover-${plan.stamp}. Look at journalctl -u etcd on ${survivor.name}, then run \`k3s-etcd recover --member ${survivor.name}\` again.`,
      );

    phase('rejoin');
    const joined = new Set([survivor.name]);
    const narrowed = (extra?: string): Cluster => ({
      ...cluster,
      hosts: cluster.hosts.filter(
        (h) => !h.roles.includes('etcd') || joined.has(h.name) || h.name === extra,
      ),
    });
    for (const h of rejoin) {
      if (opts.signal?.aborted) {
        result.notRejoined.push({ host: h.name, why: 'cancelled before it was re-added' });
        continue;
      }
      try {
        // The cluster as far as it is rebuilt: addMember's health wait covers only these hosts.
        const r = await addMember(narrowed(h.name), h.name, {
          ...hooks,
          dryRun: false,
          ssh: opts.ssh,
          learner: true,
        });
        const run = r.runs.find((x) => x.host === h.name);
        if (run) result.runs.push(run);
        if (!run || failedRun(run) || r.healthy === false)
          throw new Error(run?.error?.message ?? r.healthSummary ?? 'not healthy');
        joined.add(h.name);
        result.rejoined.push({ host: h.name, memberId: r.memberId });
      } catch (err) {
        const why = isCancelled(err) ? 'cancelled' : errorMessage(err);
        opts.onLine?.(h.name, `not re-added: ${why}`);
        result.notRejoined.push({ host: h.name, why });
      }
    }

    phase('check');
    const members = all.filter((h) => joined.has(h.name));
    const health = await waitHealthy(cluster, members, 60_000);
    result.healthy = health.ok;
    result.healthSummary = health.summary;
    try {
      const { client } = await healthyClient(narrowed(), { timeoutMs: 5000 });
      try {
        result.revision = (await client.maintenance.status()).header.revision;
      } finally {
        client.close();
      }
    } catch (err) {
      opts.onLine?.(cluster.name, `could not read the revision: ${errorMessage(err)}`);
    }
    result.tookMs = performance.now() - started;
    return result;
  } catch (err) {
    if (started > 0 && isCancelled(err))
      throw new K3sEtcdError(
        'recover-failed',
        `Cancelled part-way: ${result.kept.map((k) => `${k.host}'s data kept at ${k.path}`).join('; ') || 'no data dir was moved yet'}${result.snapshot ? `; the survivor's snapshot is ${result.snapshot.file}` : ''}. Run \`k3s-etcd recover\` again to finish (it finds ${plan.survivor.host} as the survivor).`,
        { cause: err },
      );
    throw err;
  } finally {
    for (const x of transports.values()) x.close();
  }
}

/** What to say when members were not re-added: each, and the command that adds it later. */
export function notRejoinedWords(result: RecoverResult): string[] {
  return [
    ...result.notRejoined.map(
      (n) =>
        `${n.host} was not re-added (${n.why}): its old data is kept; add it with \`k3s-etcd member add ${n.host}\` once the cause is fixed`,
    ),
    ...result.plan.others.filter((o) => o.fate === 'unreachable').map((o) => o.words),
  ];
}
