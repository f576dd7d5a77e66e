/**
 * Runs a planned move (`plan.ts`) after its one confirmation: K3s stopped on the followers, then
 * on the leader, so no server runs and nothing can write; the leader's database file copied as
 * it lies, with its digest read from the file; the restore into the target; the target's digest
 * compared with the file's (the state K3s last wrote); then each K3s server re-pointed, the
 * leader's host first. Until the re-point nothing of K3s's is changed; every failure says where
 * things stand and the way back.
 */
import { K3sEtcdError, errorMessage } from '../errors';
import { healthyClient } from '../etcd/connection';
import type { SnapshotInfo } from '../etcd/snapshotFile';
import { clientUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { installK3s } from '../k3s/ops';
import { embeddedAside } from '../k3s/server';
import type { TokenStore } from '../k3s/token';
import { runHostPlan, type HostRun, type RunHooks } from '../plan/runner';
import type { HostPlan } from '../plan/steps';
import { planRestore } from '../restore/plan';
import { restoreSnapshot, type RestoreResult } from '../restore/run';
import { copyMemberDatabase } from '../snapshot/snapshot';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { fileDigest, keyDigest, type KeyDigest } from './digest';
import { K3S_ETCD_DB } from './plan';
import type { PreparedMove } from './preflight';

export type MovePhase =
  'stop-followers' | 'stop-leader' | 'snapshot' | 'restore' | 'verify' | 'repoint';

export const MOVE_PHASES: Record<MovePhase, string> = {
  'stop-followers': 'stop K3s on the followers',
  'stop-leader': "stop K3s on the leader's host",
  snapshot: "copy the leader's stopped etcd database and read the digest of its keys",
  restore: 'restore the snapshot into the external etcd',
  verify: 'compare the external etcd with the snapshot (the state at the stop)',
  repoint: 're-point the K3s servers, one at a time',
};
const ORDER = Object.keys(MOVE_PHASES) as MovePhase[];

export interface MoveOptions extends RunHooks {
  ssh: SshContext;
  tokens: TokenStore;
  /** The workspace: the snapshot goes into its backups/<source>/, the kubeconfig into kubeconfig/. */
  workspaceDir: string;
  onPhase?(phase: MovePhase, n: number, title: string): void;
}

export interface MoveResult {
  snapshot?: SnapshotInfo;
  sourceDigest?: KeyDigest;
  targetDigest?: KeyDigest;
  restore?: Pick<RestoreResult, 'revision' | 'kept' | 'healthSummary'>;
  /** Each K3s server's re-point, in order. */
  servers: HostRun[];
  /** Where each server's embedded etcd data is kept. */
  kept: { host: string; path: string }[];
  kubeconfig?: string;
  /** Every server re-pointed and Ready. */
  ok: boolean;
}

const GO_BACK = (servers: string[]) =>
  `K3s is stopped on its old data, untouched: to go back, sudo systemctl start k3s on ${servers.join(', ')}.`;

/** K3s stopped on `host`, checked. */
function stopPlan(host: string): HostPlan {
  return {
    host,
    title: `stop K3s on ${host} (moving off its embedded etcd)`,
    payloads: [],
    steps: [
      {
        kind: 'command',
        id: 'stop-k3s',
        title: 'stop K3s (its embedded etcd stops with it)',
        check: '! systemctl is-active -q k3s',
        run: [
          'systemctl stop k3s || fail "systemctl stop k3s failed"',
          'if systemctl is-active -q k3s; then fail "k3s is still active after systemctl stop"; fi',
        ].join('\n'),
      },
    ],
  };
}

async function stopK3s(source: Cluster, host: Host, opts: MoveOptions): Promise<HostRun> {
  const t = await sshOpener(source, host, opts.ssh)(opts.signal);
  try {
    return await runHostPlan(t, stopPlan(host.name), {
      dryRun: false,
      ...(opts.onLine ? { onLine: opts.onLine } : {}),
      ...(opts.onStep ? { onStep: opts.onStep } : {}),
    });
  } finally {
    t.close();
  }
}

/**
 * Starts K3s again where the move stopped it (after a failure before anything was written).
 * Without waiting for each start: with every server stopped, a K3s server waits for its etcd's
 * quorum, which the next ones bring.
 */
async function startAgain(source: Cluster, hosts: Host[], opts: MoveOptions): Promise<string[]> {
  const failed: string[] = [];
  for (const h of hosts) {
    try {
      const t = await sshOpener(source, h, opts.ssh)();
      try {
        const r = await t.exec('systemctl start --no-block k3s', { sudo: true });
        if (r.code !== 0) failed.push(h.name);
        else opts.onLine?.(h.name, 'K3s started again on its embedded etcd');
      } finally {
        t.close();
      }
    } catch {
      failed.push(h.name);
    }
  }
  return failed;
}

/** Stops K3s on each host in order; on a failure, starts the ones stopped again and throws. */
async function stopInOrder(source: Cluster, hosts: Host[], opts: MoveOptions): Promise<void> {
  const stopped: Host[] = [];
  for (const h of hosts) {
    let run: HostRun | undefined;
    let why = '';
    try {
      run = await stopK3s(source, h, opts);
      why = run.error?.message ?? run.status;
    } catch (err) {
      why = errorMessage(err);
    }
    if (run && (run.status === 'changed' || run.status === 'unchanged')) {
      stopped.push(h);
      continue;
    }
    const notBack = await startAgain(source, stopped, opts);
    throw new K3sEtcdError(
      'provision-step-failed',
      `K3s on ${h.name} could not be stopped (${why}). Nothing was written anywhere${stopped.length > 0 ? `; K3s was started again on ${stopped.map((x) => x.name).join(', ')}${notBack.length > 0 ? ` except ${notBack.join(', ')}: start it there yourself (sudo systemctl start k3s)` : ''}` : ''}.`,
    );
  }
}

/**
 * The leader's database file, copied with K3s stopped on every server: nothing can write any
 * more, so the file holds exactly what K3s last wrote (etcd commits its database when it stops).
 * Its digest is read from the copy, at the revision etcd serves on it.
 */
async function copyAndDigest(
  source: Cluster,
  prepared: PreparedMove,
  opts: MoveOptions,
): Promise<{ snapshot: SnapshotInfo; digest: KeyDigest }> {
  const host = source.hosts.find((h) => h.name === prepared.plan.leader.host) as Host;
  const session = await sshOpener(source, host, opts.ssh)(opts.signal);
  let snapshot: SnapshotInfo;
  try {
    snapshot = await copyMemberDatabase(source, {
      workspaceDir: opts.workspaceDir,
      session,
      path: K3S_ETCD_DB,
      from: clientUrl(source, host),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } finally {
    session.close();
  }
  const digest = await fileDigest(snapshot.file, opts.signal ? { signal: opts.signal } : {});
  opts.onLine?.(
    host.name,
    `snapshot ${snapshot.file}: ${snapshot.bytes} bytes at revision ${snapshot.revision} (${K3S_ETCD_DB}, K3s stopped); ${digest.keys} keys, SHA-256 ${digest.sha256}`,
  );
  return { snapshot, digest };
}

/** Runs the move; throws a K3sEtcdError saying where things stand when a step fails. */
export async function runMove(
  source: Cluster,
  target: Cluster,
  prepared: PreparedMove,
  opts: MoveOptions,
): Promise<MoveResult> {
  const { plan } = prepared;
  const phase = (p: MovePhase) => opts.onPhase?.(p, ORDER.indexOf(p) + 1, MOVE_PHASES[p]);
  const hostOf = (name: string) => source.hosts.find((h) => h.name === name) as Host;
  const result: MoveResult = { servers: [], kept: [], ok: false };

  phase('stop-followers');
  await stopInOrder(source, plan.followers.map(hostOf), opts);

  phase('stop-leader');
  await stopInOrder(source, [hostOf(plan.leader.host)], opts).catch(async (err: unknown) => {
    await startAgain(source, plan.followers.map(hostOf), opts);
    throw err;
  });

  phase('snapshot');
  let snap: { snapshot: SnapshotInfo; digest: KeyDigest };
  try {
    snap = await copyAndDigest(source, prepared, opts);
  } catch (err) {
    const notBack = await startAgain(source, plan.servers.map(hostOf), opts);
    throw new K3sEtcdError(
      'migrate-source',
      `The snapshot of ${plan.leader.host}'s stopped etcd failed: ${errorMessage(err)} Nothing was written anywhere; K3s was started again on ${plan.servers.join(', ')}${notBack.length > 0 ? ` except ${notBack.join(', ')} (start it there yourself: sudo systemctl start k3s)` : ''}.`,
      { cause: err },
    );
  }
  result.snapshot = snap.snapshot;
  result.sourceDigest = snap.digest;

  phase('restore');
  try {
    const restorePlan = await planRestore(target, snap.snapshot.file, {
      fromCluster: source.name,
      ...(plan.bumpRevision ? { bumpRevision: plan.bumpRevision } : {}),
    });
    const r = await restoreSnapshot(target, snap.snapshot.file, {
      ssh: opts.ssh,
      dryRun: false,
      plan: restorePlan,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onLine ? { onLine: opts.onLine } : {}),
    });
    result.restore = {
      ...(r.revision ? { revision: r.revision } : {}),
      kept: r.kept,
      ...(r.healthSummary ? { healthSummary: r.healthSummary } : {}),
    };
  } catch (err) {
    throw new K3sEtcdError(
      'restore-failed',
      `The restore into ${target.name} failed: ${errorMessage(err)}\n${GO_BACK(plan.servers)}`,
      { cause: err },
    );
  }

  phase('verify');
  const { client } = await healthyClient(target, { timeoutMs: 10_000 });
  try {
    result.targetDigest = await keyDigest(client, opts.signal ? { signal: opts.signal } : {});
  } finally {
    client.close();
  }
  const s = snap.digest;
  const t = result.targetDigest;
  opts.onLine?.(
    target.name,
    `${t.keys} keys, SHA-256 ${t.sha256} (the snapshot: ${s.keys} keys, SHA-256 ${s.sha256})`,
  );
  if (t.keys !== s.keys || t.sha256 !== s.sha256)
    throw new K3sEtcdError(
      'restore-failed',
      `${target.name} does not hold what K3s's etcd held when it stopped: ${t.keys} keys with SHA-256 ${t.sha256}, the stopped source had ${s.keys} keys with SHA-256 ${s.sha256} at revision ${s.revision}. The move stops here. ${GO_BACK(plan.servers)}`,
    );

  phase('repoint');
  if (!(await opts.tokens.get(target.name)))
    await opts.tokens.set(target.name, prepared.secrets.token);
  const install = await installK3s(target, {
    hosts: plan.servers,
    dryRun: false,
    ssh: opts.ssh,
    tokens: opts.tokens,
    workspaceDir: opts.workspaceDir,
    embeddedMove: { stamp: plan.stamp },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  });
  result.servers = install.runs;
  result.kept = install.runs
    .filter((r) => r.status === 'changed' || r.status === 'unchanged')
    .map((r) => ({ host: r.host, path: embeddedAside(plan.stamp) }));
  if (install.kubeconfig) result.kubeconfig = install.kubeconfig;
  result.ok = install.runs.every((r) => r.status === 'changed' || r.status === 'unchanged');
  return result;
}

/** What a failed re-point leaves: the server named, and the ones not started. */
export function repointWords(r: MoveResult): string[] {
  const first = r.servers.find((x) => x.status === 'failed' || x.status === 'cancelled');
  if (!first) return [];
  const rest = r.servers.filter((x) => x !== first && x.steps.length === 0).map((x) => x.host);
  return [
    `${first.host} failed to re-point: ${first.error?.message ?? first.status}. The data is in the external etcd (verified)${rest.length > 0 ? `; ${rest.join(', ')} were not started` : ''}. K3s stays stopped there: fix ${first.host}, then re-point the rest by hand as docs/datastore-moves.md says (never start K3s on its embedded etcd again once one server uses the external one).`,
  ];
}
