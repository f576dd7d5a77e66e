/**
 * Runs a restore on every member host over SSH: every host reached and read before anything
 * changes, then the phases in order (`phases.ts`), a failure answered as `rollback.ts` says,
 * and the restored cluster checked (healthy, one cluster, its revision).
 */
import { CancelledError, K3sEtcdError, errorMessage, isCancelled } from '../errors';
import { createEndpointClient, type EtcdTls } from '../etcd/client';
import { connectionFor, healthyClient } from '../etcd/connection';
import { waitHealthy } from '../etcd/health';
import { clientUrl, etcdHosts, peerUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { runHostPlan, type HostRun, type HostTransport, type RunHooks } from '../plan/runner';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { readRestoreFacts, restoreHostPlans, type RestoreTarget } from './phases';
import { PHASE_TITLES, planRestore, type RestorePhase, type RestorePlan } from './plan';
import { failed, failedPhase, journalTail, keptDataDirs } from './rollback';

export interface RestoreOptions extends RunHooks {
  ssh: SshContext;
  dryRun: boolean;
  /** A plan made before (the one the person confirmed); default: planned now. */
  plan?: RestorePlan;
  /** A phase starts (for headers in the output). */
  onPhase?(phase: RestorePhase, n: number, title: string): void;
  /** Seconds to wait for every member to answer healthy after the start (default 90). */
  healthySeconds?: number;
}

export interface RestoreResult {
  plan: RestorePlan;
  dryRun: boolean;
  /** Each phase that ran, with every host's run (a dry run: every phase, only read). */
  phases: { phase: RestorePhase; runs: HostRun[] }[];
  /** Every member restored and started (not set for a dry run). */
  restored?: boolean;
  healthy?: boolean;
  healthSummary?: string;
  /** The revision a member serves after the restore. */
  revision?: string;
  /** The old data dir of each host, kept. */
  kept: { host: string; path: string }[];
}

/** Runs one phase on every host in parallel; a host that throws becomes a failed run. */
async function runPhase(
  targets: RestoreTarget[],
  phase: RestorePhase,
  opts: { dryRun: boolean } & RunHooks,
): Promise<HostRun[]> {
  return Promise.all(
    targets.map(async ({ host, t, plans }): Promise<HostRun> => {
      try {
        return await runHostPlan(t, plans[phase], opts);
      } catch (err) {
        const cancelled = isCancelled(err) || opts.signal?.aborted === true;
        const message = `${host.name}: ${cancelled ? 'cancelled' : errorMessage(err)}`;
        opts.onLine?.(host.name, `error: ${message}`);
        return {
          host: host.name,
          status: cancelled ? 'cancelled' : 'failed',
          steps: [],
          error: {
            ...(err instanceof K3sEtcdError ? { code: err.code } : {}),
            message,
          },
          timings: {},
        };
      }
    }),
  );
}

/**
 * Every member answers as one cluster: the same cluster ID, and a member list of exactly the
 * inventory's peer URLs (a member restored with another --initial-cluster forms its own cluster,
 * healthy on its own). Undefined when it does, else what differs.
 */
export async function oneClusterProblem(
  cluster: Cluster,
  tls: EtcdTls,
): Promise<string | undefined> {
  const want = etcdHosts(cluster)
    .map((h) => peerUrl(cluster, h))
    .sort();
  const seen = await Promise.all(
    etcdHosts(cluster).map(async (h) => {
      const endpoint = clientUrl(cluster, h);
      const c = await createEndpointClient(endpoint, { tls, timeoutMs: 5000 });
      try {
        const r = await c.cluster.memberList({});
        return {
          host: h.name,
          clusterId: String(r.header.cluster_id),
          peers: r.members.flatMap((m) => m.peerURLs).sort(),
        };
      } catch (err) {
        return { host: h.name, clusterId: `unreachable (${errorMessage(err)})`, peers: [] };
      } finally {
        c.close();
      }
    }),
  );
  const ids = new Set(seen.map((x) => x.clusterId));
  const wrong = seen.filter((x) => x.peers.join(',') !== want.join(','));
  if (ids.size === 1 && wrong.length === 0) return undefined;
  return seen
    .map((x) => `${x.host}: cluster ${x.clusterId}, members ${x.peers.join(' ') || 'none'}`)
    .join('; ');
}

/** Every member host reached over SSH, or an error naming each that is not (nothing changed). */
async function reachAll(
  cluster: Cluster,
  hosts: Host[],
  opts: RestoreOptions,
): Promise<{ host: Host; t: HostTransport }[]> {
  const opened = await Promise.allSettled(
    hosts.map(async (host): Promise<{ host: Host; t: HostTransport }> => ({
      host,
      t: await sshOpener(cluster, host, opts.ssh)(opts.signal),
    })),
  );
  const transports = opened
    .filter(
      (o): o is PromiseFulfilledResult<{ host: Host; t: HostTransport }> =>
        o.status === 'fulfilled',
    )
    .map((o) => o.value);
  const unreachable = opened
    .map((o, i) =>
      o.status === 'rejected' ? { host: hosts[i] as Host, err: o.reason as unknown } : undefined,
    )
    .filter((x) => x !== undefined);
  if (opts.signal?.aborted || unreachable.length > 0) {
    for (const { t } of transports) t.close();
    if (opts.signal?.aborted) throw new CancelledError('Restore');
    const first = unreachable[0]?.err;
    throw new K3sEtcdError(
      first instanceof K3sEtcdError ? first.code : 'ssh-unreachable',
      `Cannot reach ${unreachable.map((u) => `${u.host.name} (${u.host.address}): ${errorMessage(u.err)}`).join('; ')}. Every member host must be reachable before a restore stops etcd: nothing was changed on any host.`,
      { cause: first },
    );
  }
  return transports;
}

/** Every reached host read and planned, or an error naming each that cannot be (nothing changed). */
async function planAll(
  cluster: Cluster,
  plan: RestorePlan,
  transports: { host: Host; t: HostTransport }[],
  signal?: AbortSignal,
): Promise<RestoreTarget[]> {
  const targets: RestoreTarget[] = [];
  const planned = await Promise.allSettled(
    transports.map(async ({ host, t }) => {
      const read = await readRestoreFacts(t, cluster, host, signal);
      return { host, t, plans: restoreHostPlans(cluster, plan, host, read) };
    }),
  );
  const notPlanned: string[] = [];
  for (const p of planned) {
    if (p.status === 'fulfilled') targets.push(p.value);
    else notPlanned.push(errorMessage(p.reason));
  }
  if (signal?.aborted) throw new CancelledError('Restore');
  if (notPlanned.length > 0) {
    throw new K3sEtcdError(
      'restore-refused',
      `${notPlanned.join('; ')}. Nothing was changed on any host.`,
    );
  }
  return targets;
}

/** The restored cluster checked: healthy, one cluster of every member, and its revision. */
async function checkRestored(
  cluster: Cluster,
  hosts: Host[],
  targets: RestoreTarget[],
  plan: RestorePlan,
  opts: RestoreOptions,
): Promise<{ healthSummary: string; revision?: string }> {
  const health = await waitHealthy(cluster, hosts, (opts.healthySeconds ?? 90) * 1000);
  if (!health.ok) {
    const tails = await Promise.all(
      targets.map(
        async ({ host, t }) => `--- journalctl -u etcd on ${host.name}:\n${await journalTail(t)}`,
      ),
    );
    throw new K3sEtcdError(
      'restore-failed',
      `etcd started on the restored data on every member, but the cluster is not healthy: ${health.summary}. The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host.\n${tails.join('\n')}`,
    );
  }
  const apart = await oneClusterProblem(cluster, (await connectionFor(cluster)).tls);
  if (apart) {
    throw new K3sEtcdError(
      'restore-failed',
      `etcd started on the restored data on every member, but the members do not form one cluster of ${hosts.length} (${apart}). The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host.`,
    );
  }
  let revision: string | undefined;
  try {
    const { client } = await healthyClient(cluster, { timeoutMs: 5000 });
    try {
      revision = (await client.maintenance.status()).header.revision;
    } finally {
      client.close();
    }
  } catch (err) {
    opts.onLine?.(cluster.name, `could not read the revision: ${errorMessage(err)}`);
  }
  return { healthSummary: health.summary, ...(revision !== undefined ? { revision } : {}) };
}

/**
 * Restores `file` (or `opts.plan`) onto every etcd host of `cluster`. A dry run returns every
 * phase's outcome, each host only read. A real run throws `restore-refused` when something
 * stops it before etcd was stopped anywhere, and `restore-failed` (saying where each host stands)
 * after; it resolves once the restored cluster answers healthy.
 */
export async function restoreSnapshot(
  cluster: Cluster,
  file: string,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  const plan = opts.plan ?? (await planRestore(cluster, file));
  const hosts = etcdHosts(cluster);
  const say = (host: string, line: string) => opts.onLine?.(host, line);
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };

  // Reach and read every host before anything changes.
  const transports = await reachAll(cluster, hosts, opts);
  try {
    const targets = await planAll(cluster, plan, transports, opts.signal);
    const phases: RestoreResult['phases'] = [];
    const order: RestorePhase[] = ['prepare', 'stop', 'restore', 'start'];
    const run = async (phase: RestorePhase, dryRun: boolean, cancellable = true) => {
      const n = order.indexOf(phase) + 1;
      opts.onPhase?.(phase, n, PHASE_TITLES[phase]);
      const { signal, ...rest } = hooks;
      const runs = await runPhase(targets, phase, {
        ...rest,
        ...(cancellable && signal ? { signal } : {}),
        dryRun,
      });
      phases.push({ phase, runs });
      return runs;
    };

    if (opts.dryRun) {
      for (const phase of order) await run(phase, true);
      return { plan, dryRun: true, phases, kept: [] };
    }
    const rollback = { targets, plan, say, ...(opts.signal ? { signal: opts.signal } : {}) };
    for (const phase of ['prepare', 'stop', 'restore'] as const) {
      const runs = await run(phase, false);
      if (runs.some(failed)) await failedPhase(phase, runs, rollback);
    }
    // Once data dirs are swapped the restore goes to the end: cancelling here would leave
    // members on different data.
    const started = await run('start', false, false);
    if (started.some(failed)) await failedPhase('start', started, rollback);
    const kept = keptDataDirs(targets, plan, started);
    const checked = await checkRestored(cluster, hosts, targets, plan, opts);
    return { plan, dryRun: false, phases, restored: true, healthy: true, ...checked, kept };
  } finally {
    for (const { t } of transports) t.close();
  }
}
